"""Ground-truth tables shipped with nasedu (read through `nasedu.bench`), each
with its licence and provenance beside it."""
