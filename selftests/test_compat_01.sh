#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The 32-bit compat ioctl path: a 32-bit process (loop_compat32.c) binds, reads and sets status
# with the 32-bit `struct loop_info` (LOOP_GET_STATUS fills all 140 bytes, EOVERFLOW when the
# offset does not fit an int), LOOP_GET/SET_STATUS64, LOOP_CONFIGURE, LOOP_SET_BLOCK_SIZE,
# LOOP_SET_CAPACITY, LOOP_SET_DIRECT_IO, LOOP_CHANGE_FD, LOOP_CLR_FD, an unknown command, and
# the loop-control commands. Each outcome is asserted; the rust_loop run also compares the whole
# transcript with loop.ko's.
. "$(dirname "$0")/lib.sh"

lt_need clang ld.lld
prog=$(lt_build loop_compat32 "$LT_DIR/loop_compat32.c" clang --target=i386-linux-gnu -O2 -Wall \
	-Wextra -Werror -static -nostdlib -ffreestanding -fno-pic -fno-stack-protector -fuse-ld=lld) ||
	lt_fail "cannot build loop_compat32"
"$prog" /dev/null ioctl 0 0 >/dev/null 2>&1 || lt_skip "this kernel cannot run 32-bit programs (CONFIG_IA32_EMULATION)"

img=$LT_WORK/img
lt_file "$img" 8M
cp "$img" "$LT_WORK/copy"
dev=$(losetup -f)
n=${dev#/dev/loop}
ino=$(stat -c %i "$img")
st_dev=$(stat -c %d "$img")
transcript=$LT_WORK/transcript

# c EXPECTED [r:]DEV OP ARGS...: run one call, check its last line, record it (normalised).
c() {
	local want=$1 out
	shift
	out=$("$prog" "$@") || lt_fail "loop_compat32 $*: exit $?"
	[ "$(tail -n 1 <<<"$out")" = "$want" ] ||
		lt_fail "loop_compat32 ${*#"$LT_WORK"/}: got '$(tr '\n' ' ' <<<"$out")', expected '$want'"
	printf '%s: %s\n' "${*//"$LT_WORK"/WORK}" "$out" |
		sed "s/inode=$ino /inode=INO /; s/device=$st_dev /device=DEV /; s|$dev|DEV|g" >>"$transcript"
	echo "$out"
}
# field OUTPUT NAME: the value of NAME=... in a status line.
field() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1" | head -n 1; }

c "errno 6" "$dev" get_status >/dev/null
c "ok 0" "$dev" set_fd "$img" >/dev/null
c "errno 16" "$dev" set_fd "$img" >/dev/null

# Every field of the 32-bit loop_info, which the program pre-fills with 0xa5.
out=$(c "ok 0" "$dev" get_status)
lt_eq "$(field "$out" number)" "$n" "lo_number"
lt_eq "$(field "$out" inode)" "$ino" "lo_inode"
lt_eq "$(field "$out" device)" "$st_dev" "lo_device"
for f in rdevice offset flags encrypt_type encrypt_key_size init0 init1 key0 reserved0; do
	lt_eq "$(field "$out" $f)" 0 "lo_$f"
done

# SET_STATUS with the 32-bit layout: offset, flags (PARTSCAN), name.
c "ok 0" "$dev" set_status 512 8 compat-name >/dev/null
out=$(c "ok 0" "$dev" get_status)
lt_eq "$(field "$out" offset)/$(field "$out" flags)/$(field "$out" name)" 512/8/compat-name "get_status"
lt_eq "$(lt_sysfs "$dev" loop/offset)/$(lt_sysfs "$dev" loop/partscan)" 512/1 "sysfs offset/partscan"
out=$(c "ok 0" "$dev" get_status64)
lt_eq "$(field "$out" offset)/$(field "$out" sizelimit)/$(field "$out" file_name)" 512/0/compat-name "get_status64"
lt_eq "$(dd if="$dev" bs=1M status=none | sha256sum)" "$(tail -c +513 "$img" | sha256sum)" "data at offset 512"

# An offset beyond 31 bits: STATUS64 takes it, the 32-bit GET_STATUS cannot say it.
c "ok 0" "$dev" set_status64 0x100000000 0 8 >/dev/null
c "errno 75" "$dev" get_status >/dev/null
out=$(c "ok 0" "$dev" get_status64)
lt_eq "$(field "$out" offset)" 4294967296 "64-bit offset"
c "ok 0" "$dev" set_status64 0 0 8 >/dev/null
c "errno 22" "$dev" get_status_null >/dev/null

# Integer-argument commands.
c "ok 0" "$dev" ioctl 0x4C09 4096 >/dev/null # LOOP_SET_BLOCK_SIZE
lt_eq "$(lt_sysfs "$dev" queue/logical_block_size)" 4096 "block size"
c "errno 22" "$dev" ioctl 0x4C09 1000 >/dev/null
c "ok 0" "$dev" ioctl 0x4C07 0 >/dev/null  # LOOP_SET_CAPACITY
c "ok 0" "$dev" ioctl 0x4C08 0 >/dev/null  # LOOP_SET_DIRECT_IO off
c "errno 25" "$dev" ioctl 0x4C7F 0 >/dev/null # not a loop command: ENOTTY
c "errno 22" "$dev" change_fd "$LT_WORK/copy" >/dev/null # not read-only
c "ok 0" "$dev" ioctl 0x4C01 0 >/dev/null  # LOOP_CLR_FD
udevadm settle
c "errno 6" "$dev" get_status >/dev/null

# LOOP_CONFIGURE with block size and offset.
c "ok 0" "$dev" configure "$img" 4096 4096 >/dev/null
out=$(c "ok 0" "$dev" get_status64)
lt_eq "$(field "$out" offset)" 4096 "configured offset"
lt_eq "$(lt_sysfs "$dev" queue/logical_block_size)" 4096 "configured block size"
c "ok 0" "$dev" ioctl 0x4C01 0 >/dev/null
udevadm settle

# LOOP_CHANGE_FD on a read-only binding, to an identical copy.
losetup -r "$dev" "$img"
c "ok 0" "r:$dev" change_fd "$LT_WORK/copy" >/dev/null
lt_eq "$(lt_sysfs "$dev" loop/backing_file)" "$LT_WORK/copy" "backing file after CHANGE_FD"
losetup -d "$dev"
udevadm settle

# /dev/loop-control.
ctl=/dev/loop-control
free=$("$prog" $ctl ioctl 0x4C82 0) # LOOP_CTL_GET_FREE
[[ $free =~ ^ok\ [0-9]+$ ]] || lt_fail "LOOP_CTL_GET_FREE: $free"
c "ok 100" $ctl ioctl 0x4C80 100 >/dev/null  # LOOP_CTL_ADD
c "errno 17" $ctl ioctl 0x4C80 100 >/dev/null
udevadm settle # udev's probe of the new device would make REMOVE fail with EBUSY
c "ok 0" $ctl ioctl 0x4C81 100 >/dev/null    # LOOP_CTL_REMOVE
c "errno 19" $ctl ioctl 0x4C81 100 >/dev/null
c "errno 38" $ctl ioctl 0x4C83 0 >/dev/null  # not a loop-control command: ENOSYS

lt_same_as_c compat_01 "$transcript" "compat transcript"
exit 0
