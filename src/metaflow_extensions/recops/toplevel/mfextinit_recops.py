# Metaflow loads this module at the end of `import metaflow`, then the module named here.
toplevel = "cards_root"
