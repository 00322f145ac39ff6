# shellcheck shell=bash
# Sourced by scripts/check-binary.sh (for deploy.sh and fleet/) and image/build-image.sh: what
# machine an ELF file is built for.
# No `file` or `readelf` needed: the answer is in the first 20 bytes of the header.

# Prints "aarch64", "x86_64", "arm" (32-bit), "other ELF (e_machine N)" or "not an ELF file".
elf_machine() {
  local header
  header=$(od -An -tx1 -N20 -v -- "$1" 2>/dev/null | tr -d ' \n') || header=
  if [ "${header:0:8}" != 7f454c46 ] || [ ${#header} -lt 40 ]; then
    echo "not an ELF file"
    return
  fi
  local class=${header:8:2} data=${header:10:2} machine
  # e_machine: 2 bytes at offset 18, in the file's byte order (01 little, 02 big endian).
  if [ "$data" = 01 ]; then machine=$((16#${header:38:2}${header:36:2})); else machine=$((16#${header:36:4})); fi
  case "$class/$machine" in
    02/183) echo aarch64 ;;
    02/62) echo x86_64 ;;
    01/40) echo arm ;;
    *) echo "other ELF (e_machine $machine)" ;;
  esac
}
