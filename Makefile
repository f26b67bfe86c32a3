# pqsnoop: trace libpq queries of a live process with BPF uprobes.
#
#   make            build ./pqsnoop (needs the packages `make deps` installs)
#   make demo       as root: the built-in demo, traced (installs what is missing)
#   make test       as root: every test (installs what is missing)
#   make unit       the tests that need no root and no kernel
#   make deps       as root: install the Debian packages the build and tests use
#   make fuzz       the libFuzzer targets, FUZZ_SECONDS each (600)
#   make bench      as root: the benchmark (bench/README.md); BENCH_ARGS=--quick for a short run
#   make clean
#
# Quiet unless V=1.  Everything built lands in build/; the binary is copied to
# ./pqsnoop.  SAN=1 builds with AddressSanitizer and UBSan into build/san/.

.DELETE_ON_ERROR:
.SECONDARY:
.SUFFIXES:

ifeq ($(V),1)
Q :=
msg := @true
else
Q := @
msg := @printf '  %-8s %s\n'
endif

CLANG ?= clang
BPFTOOL ?= bpftool
CC ?= cc
ARCH := x86
PYTHON := /usr/bin/python3

SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ifeq ($(SAN),1)
OUT := build/san
EXTRA_CFLAGS := $(SAN_FLAGS) -O1
EXTRA_LDFLAGS := $(SAN_FLAGS)
else
OUT := build
EXTRA_CFLAGS := -O2
EXTRA_LDFLAGS :=
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter
CFLAGS := -g -std=gnu11 $(WARN) $(EXTRA_CFLAGS) -D_GNU_SOURCE \
	-I$(OUT) -Ibpf -Iuser -I/usr/include/postgresql
LDLIBS_CORE := -lpg_query -lelf -lz -lm
LDLIBS := -lbpf $(LDLIBS_CORE)

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-Ivmlinux -Ibpf

# Files that need libbpf or the skeleton; everything else in user/ is the
# "core" (assembly, escaping, JSON, fingerprints, detection, reports), which
# links without libbpf so it is unit tested without root.
TRACER_SRCS := user/main.c user/tracer.c user/attach.c user/procfs.c $(wildcard user/cmd_*.c)
CORE_SRCS := $(filter-out $(TRACER_SRCS),$(wildcard user/*.c))
CORE_OBJS := $(patsubst user/%.c,$(OUT)/core/%.o,$(CORE_SRCS))
TRACER_OBJS := $(patsubst user/%.c,$(OUT)/%.o,$(TRACER_SRCS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUT)/unit/%,$(UNIT_SRCS))

BPF_SRCS := $(wildcard bpf/*.bpf.c)
SKELS := $(patsubst bpf/%.bpf.c,$(OUT)/%.skel.h,$(BPF_SRCS))

.PHONY: all
all: pqsnoop

ifeq ($(SAN),1)
all: $(OUT)/pqsnoop
else
pqsnoop: $(OUT)/pqsnoop
	$(Q)cp $< $@.tmp && mv -f $@.tmp $@
endif

$(OUT)/pqsnoop: $(TRACER_OBJS) $(OUT)/libcore.a
	$(msg) LINK $@
	$(Q)$(CC) $(EXTRA_LDFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/libcore.a: $(CORE_OBJS)
	$(msg) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(OUT)/core/%.o: user/%.c $(wildcard user/*.h) bpf/pqsnoop.h bpf/pystack.h | $(OUT)/core
	$(msg) CC $@
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OUT)/%.o: user/%.c $(wildcard user/*.h) bpf/pqsnoop.h $(SKELS) | $(OUT)
	$(msg) CC $@
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OUT)/%.bpf.o: bpf/%.bpf.c bpf/pqsnoop.h bpf/pystack.h bpf/pystack.bpf.h vmlinux/vmlinux.h | $(OUT)
	$(msg) BPF $@
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/%.skel.h: $(OUT)/%.bpf.o
	$(msg) GENSKEL $@
	$(Q)$(BPFTOOL) gen skeleton $< > $@

$(OUT)/unit/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(OUT)/libcore.a | $(OUT)/unit
	$(msg) CC $@
	$(Q)$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(OUT)/libcore.a $(EXTRA_LDFLAGS) $(LDLIBS_CORE)

# libpq's private header, to check the pg_result offsets the BPF side reads
$(OUT)/unit/test_pgresult_layout: CFLAGS += -Itests/unit/stubs -I/usr/include/postgresql/internal

$(OUT) $(OUT)/core $(OUT)/unit:
	$(Q)mkdir -p $@

.PHONY: unit-bins
unit-bins: $(UNIT_BINS)

# vmlinux.h is committed; regenerate it on a kernel with the BTF you target.
.PHONY: vmlinux
vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h

# --- dependencies --------------------------------------------------------
# Debian packages: the build, then the tests and the demo.
BUILD_PKGS := clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libpq-dev \
	libpg-query-dev make pkg-config
TEST_PKGS := postgresql postgresql-contrib python3-psycopg2 python3-psycopg \
	python3-django python3-pytest gunicorn libpq5 valgrind libclang-rt-14-dev

.PHONY: deps check-root
check-root:
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "pqsnoop: this target loads BPF programs and installs packages: run it as root (sudo make $(MAKECMDGOALS))" >&2; \
	  exit 1; fi

deps: check-root
	@missing=""; for p in $(BUILD_PKGS) $(TEST_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
	    || { echo "pqsnoop: apt-get install failed for:$$missing" >&2; exit 1; }; \
	fi

# --- tests and demo ------------------------------------------------------
PYTEST := $(PYTHON) -m pytest

.PHONY: test unit demo
test: check-root deps
	$(Q)$(MAKE) --no-print-directory pqsnoop unit-bins
	$(Q)$(MAKE) --no-print-directory SAN=1 all unit-bins
	$(Q)cd tests && PQSNOOP=$(CURDIR)/build/san/pqsnoop UNIT_DIR=$(CURDIR)/build/san/unit \
	  $(PYTEST) -q -p no:cacheprovider $(PYTEST_ARGS)

unit: pqsnoop unit-bins
	$(Q)cd tests && UNIT_DIR=$(CURDIR)/build/unit $(PYTEST) -q -p no:cacheprovider -m "not root" $(PYTEST_ARGS)

demo: check-root deps pqsnoop
	$(Q)$(PYTHON) tests/demo/run_demo.py --pqsnoop $(CURDIR)/pqsnoop

.PHONY: clean
clean:
	rm -rf build pqsnoop

# --- benchmark -------------------------------------------------------------
# bench/floor.c loads bpf/floor.bpf.c's do-nothing programs on pqsnoop's probe
# points; bench/run_bench.py measures every tracer against it.  A benchmark,
# not a test: it prints a table and writes bench/results.json (bench/README.md).
$(OUT)/floor: bench/floor.c $(OUT)/floor.skel.h | $(OUT)
	$(msg) CC $@
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(EXTRA_LDFLAGS) -lbpf -lelf -lz

.PHONY: bench
bench: check-root deps pqsnoop $(OUT)/floor
	$(Q)$(PYTHON) bench/run_bench.py --pqsnoop $(CURDIR)/pqsnoop \
	  --floor $(CURDIR)/$(OUT)/floor $(BENCH_ARGS)

# --- fuzzing ---------------------------------------------------------------
# libFuzzer targets (tests/fuzz/README.md) on the core objects, built with
# clang -fsanitize=fuzzer,address,undefined into build/fuzz/.  test_fuzz.py
# (part of `make test` and `make unit`) builds them itself when missing and
# runs each 20 s; `make fuzz` runs them FUZZ_SECONDS each (both at once).
FUZZ_CC ?= clang
FUZZ_OUT ?= build/fuzz
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := fuzz_fingerprint fuzz_capture
FUZZ_CFLAGS := -g -O1 -std=gnu11 $(WARN) -Wno-format-nonliteral -D_GNU_SOURCE \
	-fno-omit-frame-pointer -fno-sanitize-recover=all \
	-fsanitize=fuzzer-no-link,address,undefined \
	-Ibuild -Ibpf -Iuser -I/usr/include/postgresql
FUZZ_OBJS := $(patsubst user/%.c,$(FUZZ_OUT)/obj/%.o,$(CORE_SRCS))
FUZZ_BINS := $(addprefix $(FUZZ_OUT)/,$(FUZZ_TARGETS))

$(FUZZ_OUT)/obj/%.o: user/%.c $(wildcard user/*.h) bpf/pqsnoop.h bpf/pystack.h | $(FUZZ_OUT)/obj
	$(msg) FUZZCC $@
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_OUT)/libcore.a: $(FUZZ_OBJS)
	$(msg) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_OUT)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OUT)/libcore.a
	$(msg) FUZZLD $@
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OUT)/libcore.a $(LDLIBS_CORE)

$(FUZZ_OUT)/obj:
	$(Q)mkdir -p $@

.PHONY: fuzz-bins fuzz
fuzz-bins: $(FUZZ_BINS)

fuzz: fuzz-bins
	$(Q)cd tests && FUZZ_SECONDS=$(FUZZ_SECONDS) $(PYTEST) -q -p no:cacheprovider test_fuzz.py $(PYTEST_ARGS)

# --- soak ------------------------------------------------------------------
# pgbench at its highest rate, traced for SOAK_SECONDS: exact count, zero
# drops, flat memory (tests/soak.py).  A documented run, not part of `test`.
SOAK_SECONDS ?= 600
.PHONY: soak
soak: check-root deps pqsnoop
	$(Q)$(PYTHON) tests/soak.py --seconds $(SOAK_SECONDS) --pqsnoop $(CURDIR)/pqsnoop
