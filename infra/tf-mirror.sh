#!/usr/bin/env bash
# Print the folder that holds a local Terraform provider mirror (the one above
# registry.terraform.io/hashicorp/aws/: unpacked <version>/<os_arch>/ folders, or the zip files
# that `terraform providers mirror` writes), or exit 1 when there is none.
# RECOPS_TF_MIRROR names it explicitly; otherwise the usual plugin folders are tried, then a
# shallow search of the file system.
set -euo pipefail

has_aws() { compgen -G "$1/registry.terraform.io/hashicorp/aws/*" >/dev/null; }

if [[ -n "${RECOPS_TF_MIRROR:-}" ]]; then
  if has_aws "$RECOPS_TF_MIRROR"; then
    echo "$RECOPS_TF_MIRROR"
    exit 0
  fi
  echo "RECOPS_TF_MIRROR=$RECOPS_TF_MIRROR holds no registry.terraform.io/hashicorp/aws/" >&2
  exit 1
fi

for dir in \
  "${XDG_DATA_HOME:-$HOME/.local/share}/terraform/plugins" \
  "$HOME/.terraform.d/plugins" \
  /usr/local/share/terraform/plugins \
  /usr/share/terraform/plugins \
  /opt/tf-plugins \
  /opt/terraform/plugins; do
  if has_aws "$dir"; then
    echo "$dir"
    exit 0
  fi
done

found=$(find / -maxdepth 6 \( -path /proc -o -path /sys -o -path /dev \) -prune -o \
  -type d -path '*/registry.terraform.io/hashicorp/aws' -print 2>/dev/null | head -n 1 || true)
if [[ -n "$found" ]]; then
  dirname "$(dirname "$(dirname "$found")")"
  exit 0
fi
exit 1
