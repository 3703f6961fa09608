# SPDX-License-Identifier: GPL-2.0
#
# evq: top-level build.  `make` builds kmod/evq.ko against the installed
# Debian headers, libevq and the tools; `make check` and `make demo` first
# install what they need (`make deps`), so each works alone on a fresh
# Debian 12 machine.

TOP      := $(CURDIR)
BUILD    := $(TOP)/build
KVERS     = $(shell $(TOP)/tools/kernels)
# The running kernel if we have its headers, else the first test kernel.
KVER     ?= $(shell if [ -d /lib/modules/$$(uname -r)/build ]; then uname -r; \
		else $(TOP)/tools/kernels | head -n 1; fi)
KDIR     ?= /lib/modules/$(KVER)/build
LINUX_SRC ?= /usr/src/linux-source-6.1.tar.xz
KSFT     := $(BUILD)/ksft
CHECKPATCH := $(BUILD)/checkpatch/scripts/checkpatch.pl

KSFT_DIR := $(KSFT)
export TOP BUILD KSFT_DIR

KMOD_SRCS := $(filter-out %.mod.c,$(wildcard $(TOP)/kmod/*.[ch])) \
	$(TOP)/kmod/Kbuild $(TOP)/uapi/linux/evq.h $(TOP)/VERSION

.PHONY: all deps module modules-all lib selftests tools check check-long \
	check-host check-vm check-debug debug-kernel module-debug fuzz demo \
	bench bench-queue bench-sendfile bench-mta \
	bench-generations style clean help

all: module lib tools

help:
	@echo "make            build kmod/evq.ko (KVER=$(KVER)), libevq, tools"
	@echo "make deps       install every Debian package needed (root)"
	@echo "make check      host tests, then VM selftests on: $(KVERS)"
	@echo "make check-long the slow suites (a million fuzzer operations per kernel)"
	@echo "make fuzz       each libFuzzer harness FUZZ_SECONDS=$(FUZZ_SECONDS) (Documentation/reliability.rst)"
	@echo "make check-debug  VM selftests and fuzzer on the debug kernel (KASAN, lockdep,"
	@echo "                KMEMLEAK, UBSAN; built once, about an hour: Documentation/reliability.rst)"
	@echo "make module-debug  build/kmod/debug/evq.ko against the debug kernel"
	@echo "make demo       deliverd delivers a 20,000-message mail merge in the VM"
	@echo "make bench      evq against its peers, with plots (GROUP=queue sendfile mta generations)"
	@echo "make style      checkpatch on kmod/ and uapi/"
	@echo "make install    evq.ko, libevq, deliverd and the tools, their unit and config"
	@echo "                (DESTDIR=, PREFIX=$(PREFIX); Documentation/install.rst)"
	@echo "make dkms-install, dkms-remove   evq.ko through DKMS for: $(DKMS_KVERS)"
	@echo "make deb        Debian packages of HEAD in build/deb (Documentation/debian.rst)"

deps:
	@$(TOP)/tools/deps

module:
	$(MAKE) -C $(KDIR) M=$(TOP)/kmod modules

# One build per test kernel, each in its own tree of links to kmod/, so
# both kernels' objects can coexist.  Rebuilt when a source changes.
modules-all: $(foreach k,$(KVERS),$(BUILD)/kmod/$(k)/evq.ko)

# kmod-tree NAME KDIR: build/kmod/NAME/evq.ko against the kernel tree KDIR.
define kmod-tree
	@set -e; d=$(BUILD)/kmod/$(1)/kmod; \
		mkdir -p $$d $(BUILD)/kmod/$(1)/uapi; \
		ln -sfn $(TOP)/uapi/linux $(BUILD)/kmod/$(1)/uapi/linux; \
		ln -sf $(TOP)/VERSION $(BUILD)/kmod/$(1)/VERSION; \
		for f in $(TOP)/kmod/*.[ch] $(TOP)/kmod/Kbuild; do \
			case $$f in *.mod.c) continue;; esac; \
			ln -sf $$f $$d/; done; \
		$(MAKE) -s -C $(2) M=$$d modules; \
		cp $$d/evq.ko $(BUILD)/kmod/$(1)/evq.ko; \
		echo "  KMOD    build/kmod/$(1)/evq.ko"
endef

$(BUILD)/kmod/%/evq.ko: $(KMOD_SRCS)
	$(call kmod-tree,$*,/lib/modules/$*/build)

# The debug kernel (KASAN, lockdep, KMEMLEAK, UBSAN), built once into a
# cache outside the tree by tools/vm/debug-kernel (an hour on 2 cores the
# first time), and evq.ko against it.  Not part of `make check`.
debug-kernel:
	@$(TOP)/tools/vm/debug-kernel >/dev/null

module-debug: debug-kernel
	$(call kmod-tree,debug,$(shell $(TOP)/tools/vm/debug-kernel --dir)/linux)

# The selftests and the fuzzer on the debug kernel, with its own verdicts
# (lockdep still on, no KMEMLEAK report from evq); ends "N passed, M failed".
check-debug: deps
	@$(MAKE) -s lib selftests module-debug
	@$(TOP)/tools/check-debug

lib:
	$(MAKE) -C lib O=$(BUILD)/lib

# The kselftest harness and checkpatch, used from Debian's linux-source.
$(KSFT)/kselftest_harness.h $(CHECKPATCH): $(LINUX_SRC)
	@echo "  EXTRACT kselftest harness, checkpatch from $(LINUX_SRC)"
	@rm -rf $(BUILD)/linux-src && mkdir -p $(BUILD)/linux-src $(KSFT) $(BUILD)/checkpatch/scripts
	@tar -xJf $(LINUX_SRC) -C $(BUILD)/linux-src --wildcards \
		'*/tools/testing/selftests/kselftest_harness.h' \
		'*/tools/testing/selftests/kselftest.h' \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch' '*/scripts/kernel-doc'
	@cp $(BUILD)/linux-src/*/tools/testing/selftests/kselftest*.h $(KSFT)/
	@cp $(BUILD)/linux-src/*/scripts/checkpatch.pl $(BUILD)/linux-src/*/scripts/spelling.txt \
		$(BUILD)/linux-src/*/scripts/const_structs.checkpatch \
		$(BUILD)/linux-src/*/scripts/kernel-doc $(BUILD)/checkpatch/scripts/
	@rm -rf $(BUILD)/linux-src
	@touch $(KSFT)/kselftest_harness.h $(CHECKPATCH)

selftests: lib $(KSFT)/kselftest_harness.h
	$(MAKE) -C selftests/lib
	$(MAKE) -C selftests/lib SAN=1
	$(MAKE) -C selftests/kmod
	$(MAKE) -C tools/evqstat test
	$(MAKE) -C tools/probes
	$(MAKE) -C tools/deliverd
	$(MAKE) -C tools/deliverd fuzz-build
	$(MAKE) -C examples san

tools: lib
	$(MAKE) -C tools/bench
	$(MAKE) -C tools/evqstat prog
	$(MAKE) -C tools/probes prog
	$(MAKE) -C tools/deliverd prog
	$(MAKE) -C examples

check: deps
	@$(MAKE) -s all modules-all selftests
	@$(TOP)/tools/check

# Suites too slow for check (hours under TCG): tools/check-long.
check-long: deps
	@$(MAKE) -s all modules-all selftests
	@$(TOP)/tools/check-long

# The parsers of outside input under libFuzzer (clang, ASan+UBSan): each
# harness for FUZZ_SECONDS, new inputs and crashes kept in build/fuzz/.
# `make check` only replays the seed corpora.
FUZZ_SECONDS ?= 60
fuzz: deps
	@$(MAKE) -s -C tools/deliverd fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

# The main job: deliverd mail-merges 20,000 unique messages to 300 local
# destinations (one in five slow) in the VM with evq.ko loaded, on the
# newest test kernel (its BPF attach is dependable under TCG with two
# CPUs), its spool on the VM's ext4 scratch disk.
demo: deps
	@$(MAKE) -s lib tools modules-all
	$(TOP)/tools/vm/run --kernel $(lastword $(KVERS)) --disk 2G --timeout 900 -- \
		$(TOP)/tools/deliverd/demo $(BUILD)

# make bench [GROUP="queue sendfile mta generations"]: evq against what
# users would pick instead, each comparison side by side in one run.  Each
# group writes RESULTS/GROUP.json (every figure, and the plots it
# declares); tools/bench/bench_plot draws those as PNGs beside it and
# tools/bench/bench_summary prints the named figures and their targets.
#   queue       evq, epoll, poll and io_uring in the VM (6.1, --icount)
#   sendfile    the head-of-line benchmark of evq's sendfile (VM, 6.1)
#   mta         deliverd against Postfix (VM, 6.12, deliverd on evq);
#               MTA_HOST=1 adds a host run first (deliverd on epoll,
#               5 minutes more, RESULTS/mta-host.json)
#   generations Postfix, a thread per connection and deliverd, 10 to
#               10,000 slow connections (host, deliverd on epoll)
# The sendfile bench (Documentation/bench.rst) serves a file set larger
# than the guest's memory from a scratch disk whose every read is held
# SFB_READ_DELAY_MS (sfb-slowdisk), so a page-cache miss costs what a disk
# access does.  SFB_DISK_RATE (bytes/s, empty by default) adds QEMU's
# bandwidth throttle; under --icount it runs on the host's clock, not the
# guest's, and makes the throughput figures swing (see bench.rst).
GROUP ?= queue sendfile mta generations
RESULTS ?= $(BUILD)/bench/results
SFB_MEM ?= 256M
SFB_DISK ?= 1G
SFB_DISK_RATE ?=
SFB_READ_DELAY_MS ?= 5

BENCH_GROUPS := queue sendfile mta generations

bench: deps
	@for g in $(GROUP); do case " $(BENCH_GROUPS) " in *" $$g "*) ;; \
		*) echo "GROUP=$$g: want one of: $(BENCH_GROUPS)" >&2; exit 2;; \
		esac; done
	@$(MAKE) -s lib tools modules-all
	@$(MAKE) -s -C tools/probes prog
	@mkdir -p $(RESULTS)
	@rc=0; done=; for g in $(GROUP); do \
		rm -f $(RESULTS)/$$g.json; t0=$$(date +%s); \
		if $(MAKE) -s bench-$$g; then done="$$done $(RESULTS)/$$g.json"; \
		else echo "bench: GROUP=$$g failed" >&2; rc=1; fi; \
		echo "bench_$${g}_wall_s: $$(( $$(date +%s) - t0 ))"; \
	done; \
	[ -z "$$done" ] || $(TOP)/tools/bench/bench_plot -d $(RESULTS) $$done || rc=1; \
	[ -z "$$done" ] || $(TOP)/tools/bench/bench_summary $$done || rc=1; \
	exit $$rc

bench-queue:
	$(TOP)/tools/vm/run --icount --timeout 1800 --mem 2G \
		--kernel $(firstword $(KVERS)) -- \
		$(BUILD)/bench/queue_bench -o $(RESULTS)/queue.json

bench-sendfile:
	$(TOP)/tools/vm/run --icount --timeout 900 --kernel $(firstword $(KVERS)) \
		--mem $(SFB_MEM) --disk $(SFB_DISK) \
		$(if $(SFB_DISK_RATE),--disk-rate $(SFB_DISK_RATE)) -- \
		$(TOP)/tools/bench/sfb-slowdisk $(SFB_READ_DELAY_MS) \
		$(BUILD)/bench/sendfile_bench \
		$(if $(SFB_DISK_RATE),--disk-rate $(SFB_DISK_RATE)) \
		-o $(RESULTS)/sendfile.json

bench-mta:
ifneq ($(MTA_HOST),)
	$(TOP)/tools/bench/mta_bench -o $(RESULTS)/mta-host.json
endif
	$(TOP)/tools/vm/run --kernel $(lastword $(KVERS)) --disk 4G --mem 4G \
		--timeout 1800 -- $(TOP)/tools/bench/mta_bench \
		-o $(RESULTS)/mta.json

bench-generations:
	$(TOP)/tools/bench/gen_bench -o $(RESULTS)/generations.json

KSRC_C := $(filter-out %.mod.c,$(wildcard kmod/*.c))

# checkpatch (strict for kmod/; the uapi header cannot use BIT(), and
# TRACE_EVENT's layout is the kernel's own, which --strict disputes), and
# kernel-doc, where any warning fails.
style: $(CHECKPATCH)
	$(CHECKPATCH) --no-tree --strict --terse -f $(KSRC_C) \
		$(filter-out kmod/evq_trace.h,$(wildcard kmod/*.h))
	$(CHECKPATCH) --no-tree --terse -f uapi/linux/evq.h kmod/evq_trace.h
	@out=$$(perl $(dir $(CHECKPATCH))kernel-doc -none -v uapi/linux/evq.h \
		$(KSRC_C) kmod/queue.h kmod/evq_trace.h 2>&1 | grep -i warning); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "  KDOC    clean"


clean:
	-$(MAKE) -C $(KDIR) M=$(TOP)/kmod clean
	rm -rf $(BUILD)

# make install, make dkms-install and friends.
include $(TOP)/install.mk
