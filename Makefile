# SPDX-License-Identifier: GPL-2.0
#
# rust-loop: the Linux loop block driver as a Rust-for-Linux module.
#
#   make              build loop.ko, rust_loop (bootstraps the toolchain root and guest kernel)
#   make install      install it as /lib/modules/<release>/updates/loop.ko (+ depmod): `modprobe
#                     loop` and every loop autoload then load rust_loop; make uninstall undoes it
#   make check        the test suite: C loop.ko and rust_loop side by side in one guest boot
#   make demo         boot a guest, attach an image with losetup, mkfs + mount + I/O
#   make bench        loop.ko vs rust_loop vs the raw disk, one guest boot (BENCH_QUICK=1: smoke)
#   make check-debug  the test suite on the debug kernel (KASAN, lockdep, ...)
#   make stress       the long stress (5 min) and fuzz (100000 calls) runs, both drivers
#   make crash        crash consistency: 10 power cuts per driver while fsyncing, then fsck + data
#   make clippy       build with CLIPPY=1 (SAFETY-comment and cast lints)
#   make rustfmt      format the Rust sources; rustfmt-check only checks
#   make shellcheck   lint every script
#   make rust-analyzer  write rust-project.json for editors
#   make kernel / rootfs  build only the cached guest kernel / toolchain root
#
# KDIR=/path/to/linux-build builds against your own Rust-enabled kernel with the host toolchain.

SHELL := /bin/bash
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: all modules install uninstall crash clippy rustfmt rustfmt-check rust-analyzer check check-debug stress demo bench shellcheck \
	kernel rootfs clean help

all modules:
	$(TOP)/scripts/module

install: all
	$(TOP)/scripts/install

uninstall:
	$(TOP)/scripts/install --uninstall

clippy:
	$(TOP)/scripts/module CLIPPY=1

rust-analyzer:
	$(TOP)/scripts/module rust-analyzer

rustfmt:
	$(TOP)/scripts/rustfmt

rustfmt-check:
	$(TOP)/scripts/rustfmt --check

check:
	$(TOP)/scripts/check

check-debug:
	RUST_LOOP_DEBUG=1 $(TOP)/scripts/check

# One guest, whose CPUs run in parallel (QEMU's thread per CPU): what stress looks for needs it.
stress:
	SELFTESTS="test_stress_01.sh test_fuzz_01.sh" STRESS_SECONDS=$${STRESS_SECONDS:-300} \
		FUZZ_CALLS=$${FUZZ_CALLS:-100000} LT_TIMEOUT=$${LT_TIMEOUT:-1800} \
		RUST_LOOP_CHECK_GUESTS=$${RUST_LOOP_CHECK_GUESTS:-1} $(TOP)/scripts/check

demo:
	$(TOP)/scripts/demo

crash:
	$(TOP)/scripts/crash

bench:
	$(TOP)/scripts/bench

shellcheck:
	$(TOP)/scripts/enter $(TOP)/scripts/shellcheck-all

kernel:
	$(TOP)/scripts/kernel

rootfs:
	$(TOP)/scripts/rootfs

clean:
	rm -rf $(TOP)/*.o $(TOP)/*.ko $(TOP)/*.mod* $(TOP)/.*.cmd $(TOP)/include/*.o \
		$(TOP)/include/.*.cmd $(TOP)/Module.symvers $(TOP)/modules.order $(TOP)/*.rmeta \
		$(TOP)/.tmp_versions

help:
	@sed -n '3,22p' $(TOP)/Makefile
