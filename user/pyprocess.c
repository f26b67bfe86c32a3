#include "pyprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* glibc 2.36 x86_64 struct pthread: specific_1stblock, specific. */
#define GLIBC_PTH_1STBLOCK 0x310
#define GLIBC_PTH_BLOCKS 0x510
/* How far into struct pthread the slot is searched for when it is not there. */
#define PTH_SCAN 0x1000

struct py_process {
	pid_t pid;
	int memfd;		/* /proc/PID/mem, -1: use process_vm_readv */
	unsigned major, minor;
	char version[32];
	char path[PATH_MAX];
	struct py_offsets off;
	char tss_note[160];	/* how the TSS offset was found and checked */
};

struct elf_handle {
	int fd;
	Elf *elf;
};

/* What the ELF file says about the interpreter (file addresses). */
struct elf_facts {
	GElf_Sym runtime, code_type, version, gil_this;
	bool has_runtime, has_code_type, has_version, has_gil_this;
	uint64_t bias;		/* add to a file address for the process address */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- memory ---------------------------------------------------------- */

int py_process__read(const struct py_process *p, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };
	ssize_t n;

	if (!len)
		return 0;
	if (p->memfd >= 0) {
		n = pread(p->memfd, buf, len, (off_t)addr);
		if (n == (ssize_t)len)
			return 0;
		if (n < 0)
			return errno == EIO && kill(p->pid, 0) && errno == ESRCH ? -ESRCH : -errno;
		return n == 0 && kill(p->pid, 0) && errno == ESRCH ? -ESRCH : -EIO;
	}
	n = process_vm_readv(p->pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	return n < 0 ? -errno : -EIO;
}

static int rd64(const struct py_process *p, uint64_t addr, uint64_t *v)
{
	return py_process__read(p, addr, v, sizeof(*v));
}

/* ---- ELF ------------------------------------------------------------- */

static void elf_close(struct elf_handle *h)
{
	if (h->elf)
		elf_end(h->elf);
	if (h->fd >= 0)
		close(h->fd);
	h->elf = NULL;
	h->fd = -1;
}

static int elf_open_fd(struct elf_handle *h, int fd)
{
	h->fd = fd;
	h->elf = NULL;
	if (fd < 0)
		return -1;
	if (elf_version(EV_CURRENT) == EV_NONE)
		goto fail;
	h->elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!h->elf || elf_kind(h->elf) != ELF_K_ELF || gelf_getclass(h->elf) != ELFCLASS64)
		goto fail;
	return 0;
fail:
	elf_close(h);
	return -1;
}

/* Looks the interpreter's symbols up in .dynsym and .symtab. */
static void elf_find_symbols(Elf *elf, struct elf_facts *f)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(elf, scn))) {
		Elf_Data *data;
		size_t i, n;

		if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_DYNSYM && sh.sh_type != SHT_SYMTAB))
			continue;
		if (!sh.sh_entsize || !(data = elf_getdata(scn, NULL)))
			continue;
		n = sh.sh_size / sh.sh_entsize;
		for (i = 0; i < n; i++) {
			GElf_Sym sym;
			const char *name;

			if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
			    !sym.st_value)
				continue;
			name = elf_strptr(elf, sh.sh_link, sym.st_name);
			if (!name || (name[0] != '_' && name[0] != 'P'))
				continue;
			if (!f->has_runtime && !strcmp(name, "_PyRuntime")) {
				f->runtime = sym;
				f->has_runtime = true;
			} else if (!f->has_code_type && !strcmp(name, "PyCode_Type")) {
				f->code_type = sym;
				f->has_code_type = true;
			} else if (!f->has_version && !strcmp(name, "Py_Version")) {
				f->version = sym;
				f->has_version = true;
			} else if (!f->has_gil_this &&
				   !strcmp(name, "PyGILState_GetThisThreadState")) {
				f->gil_this = sym;
				f->has_gil_this = true;
			}
		}
	}
}

/* Copies bytes at file address vaddr (from the section holding it). */
static bool elf_read_vaddr(Elf *elf, uint64_t vaddr, void *buf, size_t len)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(elf, scn))) {
		Elf_Data *data;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS)
			continue;
		if (vaddr < sh.sh_addr || vaddr - sh.sh_addr + len > sh.sh_size)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data || !data->d_buf || vaddr - sh.sh_addr + len > data->d_size)
			return false;
		memcpy(buf, (const char *)data->d_buf + (vaddr - sh.sh_addr), len);
		return true;
	}
	return false;
}

/* The address the segment at file offset 0 expects (page aligned). */
static bool elf_base_vaddr(Elf *elf, uint64_t *base)
{
	size_t i, n;
	bool found = false;

	if (elf_getphdrnum(elf, &n))
		return false;
	for (i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (!found || ph.p_vaddr - ph.p_offset < *base)
			*base = (ph.p_vaddr - ph.p_offset) & ~(uint64_t)0xfff;
		found = true;
	}
	return found;
}

/* ---- /proc/PID/maps -------------------------------------------------- */

struct mapping {
	uint64_t start, end, offset, inode;
	char path[PATH_MAX];
};

/* libpython2.7.so, libpython3.so (the stable ABI stub), libpython3.11.so.1.0 */
static bool is_libpython(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return !strncmp(base, "libpython", 9) && strstr(base, ".so");
}

/*
 * Calls fn for the file-offset-0 mapping of every distinct file in the
 * process, libpython first (want_lib) or the executable (!want_lib).
 * Stops when fn returns true.
 */
static bool for_each_image(pid_t pid, bool want_lib, const char *exe,
			   bool (*fn)(const struct mapping *m, void *arg), void *arg)
{
	char name[64], *line = NULL;
	size_t cap = 0;
	bool done = false;
	FILE *f;

	snprintf(name, sizeof(name), "/proc/%d/maps", (int)pid);
	f = fopen(name, "re");
	if (!f)
		return false;
	while (!done && getline(&line, &cap, f) > 0) {
		struct mapping m;
		unsigned long long start, end, offset, inode;
		int pos = 0;
		char *path, *nl;

		if (sscanf(line, "%llx-%llx %*s %llx %*x:%*x %llu %n",
			   &start, &end, &offset, &inode, &pos) < 4 || !pos)
			continue;
		path = line + pos;
		if ((nl = strchr(path, '\n')))
			*nl = 0;
		if (offset != 0 || path[0] != '/')
			continue;
		if (want_lib ? !is_libpython(path) : (!exe || strcmp(path, exe) != 0))
			continue;
		m.start = start;
		m.end = end;
		m.offset = offset;
		m.inode = inode;
		snprintf(m.path, sizeof(m.path), "%s", path);
		done = fn(&m, arg);
	}
	free(line);
	fclose(f);
	return done;
}

/* ---- finding _PyRuntime ---------------------------------------------- */

struct find_ctx {
	struct py_process *p;
	char other_lib[PATH_MAX];	/* a libpython without _PyRuntime, for messages */
	struct elf_facts facts;
	bool is_exe;
	uint8_t gil_code[64];	/* PyGILState_GetThisThreadState's first bytes */
};

static int open_image(pid_t pid, const struct mapping *m, bool is_exe)
{
	char name[PATH_MAX + 64];
	int fd;

	if (is_exe) {
		snprintf(name, sizeof(name), "/proc/%d/exe", (int)pid);
		return open(name, O_RDONLY | O_CLOEXEC);
	}
	/* the very file mapped, even if replaced on disk or in another mount ns */
	snprintf(name, sizeof(name), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
		 (int)pid, m->start, m->end);
	fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	snprintf(name, sizeof(name), "/proc/%d/root%s", (int)pid, m->path);
	return open(name, O_RDONLY | O_CLOEXEC);
}

static bool try_image(const struct mapping *m, void *arg)
{
	struct find_ctx *c = arg;
	struct elf_handle h;
	struct elf_facts facts;
	uint64_t base;

	memset(&facts, 0, sizeof(facts));
	if (elf_open_fd(&h, open_image(c->p->pid, m, c->is_exe)))
		return false;
	elf_find_symbols(h.elf, &facts);
	if (!facts.has_runtime || !elf_base_vaddr(h.elf, &base)) {
		if (!c->is_exe && !strstr(m->path, "libpython3.so"))
			snprintf(c->other_lib, sizeof(c->other_lib), "%s", m->path);
		elf_close(&h);
		return false;
	}
	facts.bias = m->start - base;
	c->facts = facts;
	snprintf(c->p->path, sizeof(c->p->path), "%s", m->path);

	/* keep what only the file has: the code of PyGILState_GetThisThreadState */
	if (facts.has_gil_this) {
		uint8_t code[64];
		size_t len = facts.gil_this.st_size && facts.gil_this.st_size < sizeof(code)
			? facts.gil_this.st_size : sizeof(code);

		memset(code, 0, sizeof(code));
		if (!elf_read_vaddr(h.elf, facts.gil_this.st_value, code, len))
			c->facts.has_gil_this = false;
		else
			memcpy(c->gil_code, code, sizeof(code));
	}
	elf_close(&h);
	return true;
}

/* ---- version ---------------------------------------------------------- */

/* "python3.9", "libpython3.8.so.1.0", "libpython2.7.so" -> major, minor */
static bool version_from_name(const char *path, unsigned *major, unsigned *minor)
{
	const char *base = strrchr(path, '/');
	const char *s;

	base = base ? base + 1 : path;
	s = strstr(base, "python");
	if (!s || (s[6] != '2' && s[6] != '3') || s[7] != '.' || s[8] < '0' || s[8] > '9')
		return false;
	*major = (unsigned)(s[6] - '0');
	*minor = (unsigned)strtoul(s + 8, NULL, 10);
	return true;
}

static void version_string(struct py_process *p, uint32_t hex)
{
	if (hex)
		snprintf(p->version, sizeof(p->version), "%u.%u.%u",
			 hex >> 24, (hex >> 16) & 0xff, (hex >> 8) & 0xff);
	else
		snprintf(p->version, sizeof(p->version), "%u.%u", p->major, p->minor);
}

/* ---- offsets ---------------------------------------------------------- */

/*
 * x86_64 offsets for 3.8-3.12, each checked with offsetof() against that
 * version's own headers (pyenv's include/python3.X/internal).  3.13 has
 * _Py_DebugOffsets; this row is only used to cross-check them.
 */
struct py_table_row {
	unsigned minor;
	uint32_t rt_interp_head, tss, is_threads_head, ts_thread_id, ts_native_thread_id;
	uint32_t ts_frame, cf_frame, fr_code, fr_back, fr_instr, fr_owner;
	uint8_t instr_size;
	uint16_t owner_cstack;
	uint32_t co_filename, co_name, co_qualname, co_firstlineno, co_linetable;
	uint32_t co_code_adaptive, str_ascii_size, str_compact_size;
};

#define NONE PY_OFF_NONE
static const struct py_table_row py_table[] = {
	{ 8, 32, 1392, 8, 176, NONE, 24, NONE, 32, 24, 104, NONE, 4, PY_OWNER_NONE,
	  104, 112, NONE, 40, 120, NONE, 48, 72 },
	{ 9, 32, 584, 8, 176, NONE, 24, NONE, 32, 24, 104, NONE, 4, PY_OWNER_NONE,
	  104, 112, NONE, 40, 120, NONE, 48, 72 },
	{ 10, 32, 584, 8, 176, NONE, 24, NONE, 32, 24, 96, NONE, 4, PY_OWNER_NONE,
	  104, 112, NONE, 40, 120, NONE, 48, 72 },
	{ 11, 40, 592, 16, 152, 160, 56, 8, 32, 48, 56, 69, 8, PY_OWNER_NONE,
	  112, 120, 128, 72, 136, 184, 48, 72 },
	{ 12, 40, 1544, 72, 136, 144, 56, 0, 0, 8, 56, 70, 8, 3,
	  112, 120, 128, 68, 136, 192, 40, 56 },
	{ 13, 632, 2160, 7344, 152, 160, 72, NONE, 0, 8, 56, 70, 8, 3,
	  112, 120, 128, 68, 136, 200, 40, 56 },
};
#undef NONE

static const struct py_table_row *table_row(unsigned minor)
{
	size_t i;

	for (i = 0; i < sizeof(py_table) / sizeof(py_table[0]); i++)
		if (py_table[i].minor == minor)
			return &py_table[i];
	return NULL;
}

static void offsets_from_row(struct py_offsets *o, const struct py_table_row *r)
{
	o->rt_interp_head = r->rt_interp_head;
	o->is_next = 0;		/* PyInterpreterState.next is first in 3.8-3.13 */
	o->is_threads_head = r->is_threads_head;
	o->ts_next = 8;		/* after prev */
	o->ts_thread_id = r->ts_thread_id;
	o->ts_native_thread_id = r->ts_native_thread_id;
	o->ts_frame = r->ts_frame;
	o->cf_frame = r->cf_frame;
	o->fr_code = r->fr_code;
	o->fr_back = r->fr_back;
	o->fr_instr = r->fr_instr;
	o->fr_owner = r->fr_owner;
	o->instr_size = r->instr_size;
	o->owner_cstack = r->owner_cstack;
	o->co_filename = r->co_filename;
	o->co_name = r->co_name;
	o->co_qualname = r->co_qualname;
	o->co_firstlineno = r->co_firstlineno;
	o->co_linetable = r->co_linetable;
	o->co_code_adaptive = r->co_code_adaptive;
	o->str_ascii_size = r->str_ascii_size;
	o->str_compact_size = r->str_compact_size;
}

/* CPython 3.13's _Py_DebugOffsets (Include/internal/pycore_runtime.h), all u64. */
struct debug_offsets_313 {
	char cookie[8];
	uint64_t version, free_threaded;
	struct { uint64_t size, finalizing, interpreters_head; } runtime_state;
	struct {
		uint64_t size, id, next, threads_head, gc, imports_modules, sysdict,
			builtins, ceval_gil, gil_runtime_state, gil_runtime_state_enabled,
			gil_runtime_state_locked, gil_runtime_state_holder;
	} interpreter_state;
	struct {
		uint64_t size, prev, next, interp, current_frame, thread_id,
			native_thread_id, datastack_chunk, status;
	} thread_state;
	struct {
		uint64_t size, previous, executable, instr_ptr, localsplus, owner;
	} interpreter_frame;
	struct {
		uint64_t size, filename, name, qualname, linetable, firstlineno,
			argcount, localsplusnames, localspluskinds, co_code_adaptive;
	} code_object;
	struct { uint64_t size, ob_type; } pyobject;
	struct { uint64_t size, tp_name, tp_repr, tp_flags; } type_object;
	struct { uint64_t size, ob_item, ob_size; } tuple_object;
	struct { uint64_t size, ob_item, ob_size; } list_object;
	struct { uint64_t size, ma_keys, ma_values; } dict_object;
	struct { uint64_t size, ob_fval; } float_object;
	struct { uint64_t size, lv_tag, ob_digit; } long_object;
	struct { uint64_t size, ob_size, ob_sval; } bytes_object;
	struct { uint64_t size, state, length, asciiobject_size; } unicode_object;
	struct { uint64_t size, collecting; } gc;
};

static bool small(uint64_t v, uint32_t *out)
{
	if (v >= (1u << 20))
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Fills o from the 3.13 debug offsets; false if one is implausible. */
static bool offsets_from_debug_313(struct py_offsets *o, const struct debug_offsets_313 *d)
{
	bool ok = true;

	ok &= small(d->runtime_state.interpreters_head, &o->rt_interp_head);
	ok &= small(d->interpreter_state.next, &o->is_next);
	ok &= small(d->interpreter_state.threads_head, &o->is_threads_head);
	ok &= small(d->thread_state.next, &o->ts_next);
	ok &= small(d->thread_state.thread_id, &o->ts_thread_id);
	ok &= small(d->thread_state.native_thread_id, &o->ts_native_thread_id);
	ok &= small(d->thread_state.current_frame, &o->ts_frame);
	o->cf_frame = PY_OFF_NONE;
	ok &= small(d->interpreter_frame.executable, &o->fr_code);
	ok &= small(d->interpreter_frame.previous, &o->fr_back);
	ok &= small(d->interpreter_frame.instr_ptr, &o->fr_instr);
	ok &= small(d->interpreter_frame.owner, &o->fr_owner);
	o->instr_size = 8;
	o->owner_cstack = 3;	/* FRAME_OWNED_BY_CSTACK */
	ok &= small(d->code_object.filename, &o->co_filename);
	ok &= small(d->code_object.name, &o->co_name);
	ok &= small(d->code_object.qualname, &o->co_qualname);
	ok &= small(d->code_object.firstlineno, &o->co_firstlineno);
	ok &= small(d->code_object.linetable, &o->co_linetable);
	ok &= small(d->code_object.co_code_adaptive, &o->co_code_adaptive);
	ok &= small(d->unicode_object.asciiobject_size, &o->str_ascii_size);
	/* PyCompactUnicodeObject = PyASCIIObject + utf8_length + utf8 */
	o->str_compact_size = o->str_ascii_size + 16;
	return ok;
}

/*
 * The bytes of a frame the BPF side reads at once: every field it loads
 * (8 bytes each, f_lasti included, 1 for owner).  False if they do not fit
 * its window.
 */
static bool set_frame_read(struct py_offsets *o)
{
	uint32_t end = o->fr_code + 8;

	if (o->fr_back + 8 > end)
		end = o->fr_back + 8;
	if (o->fr_instr + 8 > end)
		end = o->fr_instr + 8;
	if (o->fr_owner != PY_OFF_NONE && o->fr_owner + 1 > end)
		end = o->fr_owner + 1;
	if (end > PY_FRAME_WIN || o->fr_code + 8 > PY_FRAME_WIN ||
	    o->fr_back + 8 > PY_FRAME_WIN || o->fr_instr + 8 > PY_FRAME_WIN ||
	    (o->fr_owner != PY_OFF_NONE && o->fr_owner >= PY_FRAME_WIN))
		return false;
	o->fr_read = (uint16_t)end;
	return true;
}

/* ---- autoTSSkey -------------------------------------------------------- */

static int32_t le32(const uint8_t *b)
{
	return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
			 (uint32_t)b[3] << 24);
}

/*
 * The offset of autoTSSkey in _PyRuntime, from the code of
 * PyGILState_GetThisThreadState (file addresses), which passes its address
 * to PyThread_tss_get or its key to pthread_getspecific:
 *   mov  GOT(%rip),%rax ; lea disp32(%rax),%reg      (PIC: pyenv 3.8-3.13)
 *   mov  disp32(%rip),%r32                          (non-PIC: Debian 3.11, the key)
 * A GOT slot is only trusted if it holds _PyRuntime in the process.
 * Returns false if the code matches neither form.
 */
static bool decode_tss(const struct py_process *p, const struct elf_facts *f,
		       const uint8_t *code, uint32_t *off)
{
	uint64_t fn = f->gil_this.st_value, rt = f->runtime.st_value;
	uint64_t got = 0, slot;
	size_t i;

	for (i = 0; i + 7 <= 64; i++) {
		const uint8_t *c = code + i;

		/* mov rel32(%rip),%rax: remember the GOT slot */
		if (c[0] == 0x48 && c[1] == 0x8b && c[2] == 0x05) {
			got = fn + i + 7 + (int64_t)le32(c + 3);
			i += 6;
			continue;
		}
		/* lea disp32(%rax),%r64 (modrm mod=10, rm=000) */
		if (got && (c[0] == 0x48 || c[0] == 0x4c) && c[1] == 0x8d &&
		    (c[2] & 0xc7) == 0x80) {
			int32_t disp = le32(c + 3);

			if (rd64(p, got + f->bias, &slot) || slot != rt + f->bias || disp <= 0)
				return false;
			*off = (uint32_t)disp;
			return true;
		}
		/* mov rel32(%rip),%r32 (modrm mod=00, rm=101): the key itself */
		if (c[0] == 0x8b && (c[1] & 0xc7) == 0x05 && i + 6 <= 64) {
			uint64_t key = fn + i + 6 + (int64_t)le32(c + 2);

			if (key < rt + 4 || (f->runtime.st_size && key >= rt + f->runtime.st_size))
				continue;
			*off = (uint32_t)(key - rt - 4);
			return true;
		}
	}
	return false;
}

struct tss_val {
	int32_t initialized;
	uint32_t key;
};

static bool tss_usable(const struct py_process *p, uint64_t addr, struct tss_val *v)
{
	return !py_process__read(p, addr, v, sizeof(*v)) && v->initialized == 1 &&
	       v->key < PY_MAX_PTHREAD_KEY;
}

/* pthread_getspecific(key) of the thread at fs, under a given glibc layout. */
static bool pth_slot(const struct py_process *p, uint64_t fs, uint32_t key,
		     uint32_t first, uint32_t blocks, uint64_t *val)
{
	uint64_t blk;

	if (key < 32)
		return !rd64(p, fs + first + 16 * (uint64_t)key + 8, val);
	if (rd64(p, fs + blocks + 8 * (uint64_t)(key / 32), &blk) || !blk)
		return false;
	return !rd64(p, blk + 16 * (uint64_t)(key % 32) + 8, val);
}

/* Calls fn for each thread state of the process (first interpreter first). */
static int for_each_tstate(const struct py_process *p,
			   bool (*fn)(const struct py_process *p, uint64_t ts, void *arg), void *arg)
{
	const struct py_offsets *o = &p->off;
	uint64_t interp, ts;
	int i, j, n = 0;

	if (rd64(p, o->runtime + o->rt_interp_head, &interp))
		return -1;
	for (j = 0; j < PY_MAX_INTERPS && interp; j++) {
		if (rd64(p, interp + o->is_threads_head, &ts))
			return -1;
		for (i = 0; i < PY_MAX_THREADS && ts; i++, n++) {
			if (fn(p, ts, arg))
				return n + 1;
			if (rd64(p, ts + o->ts_next, &ts))
				return -1;
		}
		if (rd64(p, interp + o->is_next, &interp))
			return -1;
	}
	return n;
}

struct tss_check {
	uint32_t key, first, blocks;
	int matched, tried;
};

static bool tss_check_one(const struct py_process *p, uint64_t ts, void *arg)
{
	struct tss_check *c = arg;
	uint64_t fs, val;

	if (rd64(p, ts + p->off.ts_thread_id, &fs) || fs < 4096)
		return false;
	c->tried++;
	if (pth_slot(p, fs, c->key, c->first, c->blocks, &val) && val == ts)
		c->matched++;
	return false;
}

/*
 * Looks for glibc's specific_1stblock near the thread pointer of a thread
 * (another glibc than the one the defaults are for): the slot that holds
 * the thread's own state.  Reads in chunks, as the TCB may end on a page
 * boundary.
 */
static bool tss_scan_one(const struct py_process *p, uint64_t ts, void *arg)
{
	struct tss_check *c = arg;
	uint64_t fs, buf[64], pos, first;
	size_t i;

	if (rd64(p, ts + p->off.ts_thread_id, &fs) || fs < 4096)
		return false;
	for (pos = 0; pos < PTH_SCAN; pos += sizeof(buf)) {
		if (py_process__read(p, fs + pos, buf, sizeof(buf)))
			return false;
		for (i = 0; i < sizeof(buf) / 8; i++) {
			uint64_t at = pos + 8 * i;

			if (buf[i] != ts || at < 8 + 16 * (uint64_t)c->key)
				continue;
			first = at - 8 - 16 * (uint64_t)c->key;
			if (first & 15)
				continue;
			c->first = (uint32_t)first;
			c->blocks = (uint32_t)first + 32 * 16;	/* specific[] follows */
			return true;
		}
	}
	return false;
}

/*
 * Picks the autoTSSkey offset (decoded, else the table's) and checks that
 * pthread_getspecific(key) of live threads, read the way the BPF side
 * reads it, gives their own thread states.  If no thread agrees, the BPF
 * side is told not to use the TSS slot (it falls back to the thread walk).
 */
static void setup_tss(struct py_process *p, const struct elf_facts *f, const uint8_t *code,
		      const struct py_table_row *row)
{
	struct py_offsets *o = &p->off;
	uint32_t cand[2];
	const char *how[2];
	int ncand = 0, i;

	if (f->has_gil_this && decode_tss(p, f, code, &cand[ncand]))
		how[ncand++] = "decoded from PyGILState_GetThisThreadState";
	if (row && (!ncand || cand[0] != row->tss)) {
		cand[ncand] = row->tss;
		how[ncand++] = "from the offset table";
	}
	o->tss = 0;
	o->pth_1stblock = GLIBC_PTH_1STBLOCK;
	o->pth_blocks = GLIBC_PTH_BLOCKS;
	snprintf(p->tss_note, sizeof(p->tss_note), "autoTSSkey not found: thread walk only");

	for (i = 0; i < ncand; i++) {
		struct tss_check c = { 0 };
		struct tss_val v;
		uint64_t addr = o->runtime + cand[i];

		if (!tss_usable(p, addr, &v))
			continue;
		c.key = v.key;
		c.first = GLIBC_PTH_1STBLOCK;
		c.blocks = GLIBC_PTH_BLOCKS;
		for_each_tstate(p, tss_check_one, &c);
		if (!c.matched && c.key < 32 && for_each_tstate(p, tss_scan_one, &c) > 0) {
			c.tried = 0;
			for_each_tstate(p, tss_check_one, &c);
		}
		if (c.matched) {
			o->tss = addr;
			o->pth_1stblock = c.first;
			o->pth_blocks = c.blocks;
			o->flags |= PY_F_TSS_VERIFIED;
			snprintf(p->tss_note, sizeof(p->tss_note),
				 "autoTSSkey at +%u (%s), key %u, slot at fs+0x%x: %d of %d threads agree",
				 cand[i], how[i], v.key, c.first + 16 * v.key + 8, c.matched, c.tried);
			return;
		}
		if (!c.tried && !o->tss) {
			/* no thread to check against yet: trust the first usable one */
			o->tss = addr;
			snprintf(p->tss_note, sizeof(p->tss_note),
				 "autoTSSkey at +%u (%s), key %u: no thread to verify it on",
				 cand[i], how[i], v.key);
		}
	}
	if (!o->tss && ncand)
		snprintf(p->tss_note, sizeof(p->tss_note),
			 "autoTSSkey candidates did not match any thread: thread walk only");
}

/* ---- py_process ---------------------------------------------------------- */

static int open_mem(pid_t pid)
{
	char name[64];

	snprintf(name, sizeof(name), "/proc/%d/mem", (int)pid);
	return open(name, O_RDONLY | O_CLOEXEC);
}

/* Why no _PyRuntime was found, as precisely as the process allows. */
static void explain_not_found(pid_t pid, const char *exe, const char *other_lib,
			      char *err, size_t errlen)
{
	const char *old = other_lib[0] ? other_lib : exe;
	unsigned maj = 0, min = 0;
	int saved = errno;

	if (kill(pid, 0) && errno == ESRCH)
		set_err(err, errlen, "process %d does not exist", (int)pid);
	else if (old[0] && version_from_name(old, &maj, &min))
		set_err(err, errlen, "process %d runs Python %u.%u (%s), which pqsnoop does "
			"not support (3.8 to 3.13)", (int)pid, maj, min, old);
	else if (!exe[0])
		set_err(err, errlen, "cannot inspect process %d: %s", (int)pid, strerror(saved));
	else
		set_err(err, errlen, "process %d is not a Python process: no libpython in its "
			"maps and no _PyRuntime in its executable %s", (int)pid, exe);
}

/*
 * The version, from the most to the least precise source: _Py_DebugOffsets
 * (3.13+, which then also give the offsets), Py_Version (3.11+), the file
 * name.  Returns 0, or -1 with a message.
 */
static int read_version(struct py_process *p, const struct elf_facts *f, const char *exe,
			char *err, size_t errlen)
{
	struct debug_offsets_313 dbg;
	uint64_t ver = 0;
	uint32_t hex = 0;
	int pid = (int)p->pid;

	if (!py_process__read(p, p->off.runtime, &dbg, sizeof(dbg)) &&
	    !memcmp(dbg.cookie, "xdebugpy", 8))
		hex = (uint32_t)dbg.version;
	else if (f->has_version &&
		 !py_process__read(p, f->version.st_value + f->bias, &ver, sizeof(ver)))
		hex = (uint32_t)ver;
	if (hex) {
		p->major = hex >> 24;
		p->minor = (hex >> 16) & 0xff;
	} else if (!version_from_name(p->path, &p->major, &p->minor) &&
		   !version_from_name(exe, &p->major, &p->minor)) {
		set_err(err, errlen, "process %d: cannot tell the Python version of %s",
			pid, p->path);
		return -1;
	}
	p->off.version = hex ? hex : (uint32_t)(p->major << 24 | p->minor << 16);
	version_string(p, hex);

	if (hex && p->major == 3 && p->minor == 13 && !memcmp(dbg.cookie, "xdebugpy", 8)) {
		if (dbg.free_threaded) {
			set_err(err, errlen, "process %d runs a free-threaded Python %s, which "
				"pqsnoop does not support", pid, p->version);
			return -1;
		}
		if (!offsets_from_debug_313(&p->off, &dbg)) {
			set_err(err, errlen, "process %d: implausible _Py_DebugOffsets in %s",
				pid, p->path);
			return -1;
		}
		p->off.flags |= PY_F_DEBUG_OFFSETS;
	}
	return 0;
}

struct py_process *py_process__new(pid_t pid, char *err, size_t errlen)
{
	struct py_process *p;
	struct find_ctx c;
	char exe_link[64], exe[PATH_MAX];
	const struct py_table_row *row;
	uint64_t interp = 0, ts = 0;
	ssize_t n;

	p = calloc(1, sizeof(*p));
	if (!p) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	p->pid = pid;
	p->memfd = open_mem(pid);
	if (p->memfd < 0 && errno == ENOENT) {
		set_err(err, errlen, "process %d does not exist", (int)pid);
		goto fail;
	}

	memset(&c, 0, sizeof(c));
	c.p = p;
	snprintf(exe_link, sizeof(exe_link), "/proc/%d/exe", (int)pid);
	n = readlink(exe_link, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = 0;
	if (n > 10 && !strcmp(exe + n - 10, " (deleted)"))
		exe[n - 10] = 0;

	/* libpython3.X.so* first; else the executable (Debian's python3) */
	if (!for_each_image(pid, true, NULL, try_image, &c)) {
		c.is_exe = true;
		if (!exe[0] || !for_each_image(pid, false, exe, try_image, &c)) {
			explain_not_found(pid, exe, c.other_lib, err, errlen);
			goto fail;
		}
	}
	p->off.runtime = c.facts.runtime.st_value + c.facts.bias;
	if (c.facts.has_code_type)
		p->off.code_type = c.facts.code_type.st_value + c.facts.bias;

	if (read_version(p, &c.facts, exe, err, errlen))
		goto fail;
	row = p->major == 3 ? table_row(p->minor) : NULL;
	if (!row) {
		set_err(err, errlen, "process %d runs Python %s, which pqsnoop does not "
			"support (3.8 to 3.13)", (int)pid, p->version);
		goto fail;
	}
	if (!(p->off.flags & PY_F_DEBUG_OFFSETS)) {
		if (p->minor >= 13) {
			set_err(err, errlen, "process %d: Python %s without _Py_DebugOffsets "
				"at _PyRuntime", (int)pid, p->version);
			goto fail;
		}
		offsets_from_row(&p->off, row);
	}
	if (!set_frame_read(&p->off)) {
		set_err(err, errlen, "process %d: Python %s frame fields lie beyond the %d "
			"bytes read per frame", (int)pid, p->version, PY_FRAME_WIN);
		goto fail;
	}
	if (!p->off.code_type) {
		set_err(err, errlen, "process %d: no PyCode_Type symbol in %s", (int)pid, p->path);
		goto fail;
	}

	/* Python must be running: an interpreter with a thread */
	if (py_process__read(p, p->off.runtime + p->off.rt_interp_head, &interp,
			     sizeof(interp)) || !interp ||
	    py_process__read(p, interp + p->off.is_threads_head, &ts, sizeof(ts)) || !ts) {
		set_err(err, errlen, "process %d: Python %s in %s is not initialized "
			"(no interpreter or no thread yet)", (int)pid, p->version, p->path);
		goto fail;
	}
	setup_tss(p, &c.facts, c.gil_code, row);
	return p;

fail:
	py_process__free(p);
	return NULL;
}

void py_process__free(struct py_process *p)
{
	if (!p)
		return;
	if (p->memfd >= 0)
		close(p->memfd);
	free(p);
}

pid_t py_process__pid(const struct py_process *p)
{
	return p->pid;
}

const struct py_offsets *py_process__offsets(const struct py_process *p)
{
	return &p->off;
}

const char *py_process__version(const struct py_process *p)
{
	return p->version;
}

unsigned py_process__minor(const struct py_process *p)
{
	return p->minor;
}

const char *py_process__path(const struct py_process *p)
{
	return p->path;
}

const char *py_process__tss_note(const struct py_process *p)
{
	return p->tss_note;
}

/* ---- the stack, as the BPF side reads it ----------------------------- */

static uint64_t tss_tstate(const struct py_process *p, uint64_t fs)
{
	struct tss_val v;
	uint64_t ts;

	if (!p->off.tss || py_process__read(p, p->off.tss, &v, sizeof(v)) ||
	    v.initialized != 1 || v.key >= PY_MAX_PTHREAD_KEY)
		return 0;
	if (!pth_slot(p, fs, v.key, p->off.pth_1stblock, p->off.pth_blocks, &ts))
		return 0;
	return ts;
}

struct walk_find {
	uint64_t fs, found;
};

static bool walk_match(const struct py_process *p, uint64_t ts, void *arg)
{
	struct walk_find *w = arg;
	uint64_t tid;

	if (rd64(p, ts + p->off.ts_thread_id, &tid) || tid != w->fs)
		return false;
	w->found = ts;
	return true;
}

int py_process__read_stack(const struct py_process *p, uint64_t fs, unsigned flags,
			   struct py_stack *out)
{
	const struct py_offsets *o = &p->off;
	uint64_t ts, tid, frame, code, instr;
	uint8_t owner;
	uint32_t n = 0, i;

	memset(out, 0, sizeof(*out));
	ts = flags & PY_READ_WALK_ONLY ? 0 : tss_tstate(p, fs);
	if (ts && !rd64(p, ts + o->ts_thread_id, &tid) && tid == fs) {
		out->method = PY_METHOD_TSS;
	} else {
		struct walk_find w = { fs, 0 };

		for_each_tstate(p, walk_match, &w);
		if (!w.found) {
			out->err = PY_ERR_NO_THREAD;
			return out->err;
		}
		ts = w.found;
		out->method = PY_METHOD_WALK;
	}
	if (rd64(p, ts + o->ts_frame, &frame))
		goto read_error;
	if (o->cf_frame != PY_OFF_NONE && frame && rd64(p, frame + o->cf_frame, &frame))
		goto read_error;
	for (i = 0; i < PY_MAX_WALK && frame; i++) {
		if (n >= PY_MAX_FRAMES) {
			out->truncated = 1;
			break;
		}
		owner = 0;
		if (o->fr_owner != PY_OFF_NONE &&
		    py_process__read(p, frame + o->fr_owner, &owner, 1))
			goto read_error;
		if (rd64(p, frame + o->fr_code, &code) || rd64(p, frame + o->fr_instr, &instr))
			goto read_error;
		if (o->instr_size == 4)
			instr = (uint64_t)(int64_t)(int32_t)(uint32_t)instr;
		if (owner != o->owner_cstack) {
			out->frames[n].code = code;
			out->frames[n].instr = instr;
			n++;
		}
		if (rd64(p, frame + o->fr_back, &frame))
			goto read_error;
	}
	if (i == PY_MAX_WALK && frame)
		out->truncated = 1;
	out->nframes = (uint16_t)n;
	return out->err;

read_error:
	out->nframes = (uint16_t)n;
	out->err = PY_ERR_READ;
	return out->err;
}
