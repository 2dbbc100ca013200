variable "endpoint" {
  description = "URL of the local AWS emulator (moto's server), e.g. http://127.0.0.1:5000."
  type        = string

  validation {
    condition     = can(regex("^http://(127\\.0\\.0\\.1|localhost):[0-9]+$", var.endpoint))
    error_message = "endpoint must be a loopback URL: this root only ever talks to a local emulator."
  }
}

variable "name" {
  description = "Prefix of every resource."
  type        = string
  default     = "recops-emu"
}
