/*
 * The Linux half of `cargo xtask bench syscalls`: a static /init that
 * times the Linux equivalents of test-bench's rows, prints one line per
 * row and powers the machine off.
 *
 * Each iteration is timed exactly as on exo: t0 = rdtsc(); op; t1 =
 * rdtsc(); sample t1 - t0 (under QEMU -icount shift=0: guest instructions,
 * the rdtsc pair included). Around that pair, clock_gettime(CLOCK_MONOTONIC)
 * gives a wall-time sample for the run without icount. WARMUP iterations
 * are thrown away; ITERS are sorted:
 *
 *   bench: start tsc=N
 *   bench: null-syscall median=N min=N iters=2000 ns_median=N
 *   bench: end tsc=N failures=0
 *
 * `ns_median` is the median of the clock_gettime deltas minus the median
 * of an empty measurement (the `empty` row's own ns_median is that
 * overhead, unsubtracted). `info:` lines tell the clock source and what the
 * kernel logged about the TSC.
 *
 * Build: gcc -static -O2 -o init bench.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 200
#define ITERS 2000

static uint64_t tsc_samples[ITERS];
static int64_t ns_samples[ITERS];
static int64_t clock_overhead;
static int failures;

/* The same instruction sequence as Rust's core::arch::x86_64::_rdtsc. */
static inline __attribute__((always_inline)) uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
}

static inline __attribute__((always_inline)) int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Writes a line with one write(2) (no stdio buffering on the console). */
static void say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	ssize_t w = write(1, buf, n);
	(void)w;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Prints the row; returns the median of the ns samples (unsubtracted). */
static int64_t report(const char *name)
{
	qsort(tsc_samples, ITERS, sizeof tsc_samples[0], cmp_u64);
	qsort(ns_samples, ITERS, sizeof ns_samples[0], cmp_i64);
	uint64_t median = (tsc_samples[ITERS / 2 - 1] + tsc_samples[ITERS / 2]) / 2;
	int64_t ns = (ns_samples[ITERS / 2 - 1] + ns_samples[ITERS / 2]) / 2;
	int64_t net = ns - clock_overhead;
	if (net < 0)
		net = 0;
	say("bench: %s median=%llu min=%llu iters=%d ns_median=%lld", name,
	    (unsigned long long)median, (unsigned long long)tsc_samples[0], ITERS,
	    (long long)net);
	return ns;
}

static void fail(const char *name, const char *call, int err, int i)
{
	say("bench: %s failed: %s returned -1 errno=%d (%s) at iteration %d", name,
	    call, err, strerror(err), i);
	failures++;
}

/*
 * Runs OP (a statement that sets `ok = 0` and calls fail() on error)
 * WARMUP + ITERS times between the timer reads, then reports NAME.
 */
#define MEASURE(NAME, OP)                                                      \
	do {                                                                   \
		int ok = 1;                                                    \
		for (int i = 0; i < WARMUP + ITERS && ok; i++) {               \
			int64_t c0 = now_ns();                                 \
			uint64_t t0 = rdtsc();                                 \
			OP;                                                    \
			uint64_t t1 = rdtsc();                                 \
			int64_t c1 = now_ns();                                 \
			if (i >= WARMUP) {                                     \
				tsc_samples[i - WARMUP] = t1 - t0;             \
				ns_samples[i - WARMUP] = c1 - c0;              \
			}                                                      \
		}                                                              \
		if (ok)                                                        \
			report(NAME);                                          \
	} while (0)

static void cap_transfer_row(void)
{
	const char *name = "cap-transfer";
	int there[2], back[2];
	if (pipe(there) || pipe(back)) {
		fail(name, "pipe", errno, 0);
		return;
	}
	pid_t child = fork();
	if (child < 0) {
		fail(name, "fork", errno, 0);
		return;
	}
	if (child == 0) {
		char c;
		close(there[1]);
		close(back[0]);
		while (read(there[0], &c, 1) == 1)
			if (write(back[1], &c, 1) != 1)
				break;
		_exit(0);
	}
	close(there[0]);
	close(back[1]);
	char byte = 'x';
	MEASURE(name, {
		if (write(there[1], &byte, 1) != 1) {
			fail(name, "write", errno, i);
			ok = 0;
		} else if (read(back[0], &byte, 1) != 1) {
			fail(name, "read", errno, i);
			ok = 0;
		}
	});
	close(there[1]);
	close(back[0]);
	waitpid(child, NULL, 0);
}

/*
 * Keeps one populated page mapped right above where the rows' mmaps land
 * (mmap allocates top down: the first free gap below the anchor), in the
 * same 2 MiB region, so the page-table page that covers them stays, as
 * exo's page tables stay until exit. Without it, ASLR decides at each boot
 * whether the benchmark's page is alone in its 2 MiB region; if it is,
 * every populating iteration also allocates, zeroes and frees a page-table
 * page (about 5,000 instructions more) and the counts differ from boot to
 * boot. The anchor is read-only so that the rows' writable mappings never
 * merge with it (a merge would skip the VMA and anon_vma set-up that each
 * fresh mapping has). An anchor less than 64 KiB above the bottom of its
 * region stays mapped and another is placed below it.
 */
static void anchor_page_tables(void)
{
	for (int tries = 0; tries < 64; tries++) {
		char *a = mmap(NULL, 4096, PROT_READ,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (a == MAP_FAILED) {
			say("info: anchor mmap failed: errno=%d", errno);
			return;
		}
		if (((uintptr_t)a & 0x1fffff) >= 16 * 4096)
			return;
	}
}

/*
 * Appel and Li's rows, as on exo (test-bench.rs): a 128-page anonymous
 * region, populated; a SIGSEGV handler (SA_SIGINFO) that mprotects the
 * faulting page read-write and, for appel1, the page opened before
 * PROT_NONE, then returns (sigreturn). `dirty` has no Linux call.
 */
#define VM_PAGES 128
static char *vm;
static volatile int appel1_mode;
static char *volatile open_page;
static volatile int segv_failed;

static void segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	char *page = (char *)((uintptr_t)si->si_addr & ~(uintptr_t)4095);
	if (page < vm || page >= vm + VM_PAGES * 4096 ||
	    mprotect(page, 4096, PROT_READ | PROT_WRITE)) {
		segv_failed = 1;
		signal(SIGSEGV, SIG_DFL);
		return;
	}
	if (appel1_mode) {
		char *before = open_page;
		open_page = page;
		if (mprotect(before, 4096, PROT_NONE))
			segv_failed = 1;
	}
}

/* Times a row whose untimed SETUP precedes the timed OP in each iteration. */
#define MEASURE_AFTER(NAME, SETUP, OP)                                         \
	do {                                                                   \
		int ok = 1;                                                    \
		for (int i = 0; i < WARMUP + ITERS && ok; i++) {               \
			SETUP;                                                 \
			int64_t c0 = now_ns();                                 \
			uint64_t t0 = rdtsc();                                 \
			OP;                                                    \
			uint64_t t1 = rdtsc();                                 \
			int64_t c1 = now_ns();                                 \
			if (i >= WARMUP) {                                     \
				tsc_samples[i - WARMUP] = t1 - t0;             \
				ns_samples[i - WARMUP] = c1 - c0;              \
			}                                                      \
		}                                                              \
		if (ok && !segv_failed)                                        \
			report(NAME);                                          \
		else if (segv_failed)                                          \
			say("bench: %s failed: the SIGSEGV handler failed", NAME); \
	} while (0)

#define PROT(NAME, P, N, F)                                                    \
	if (mprotect((P), (N) * 4096, (F))) {                                  \
		fail(NAME, "mprotect", errno, i);                              \
		ok = 0;                                                        \
	}

static void appel_li_rows(void)
{
	vm = mmap(NULL, VM_PAGES * 4096, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (vm == MAP_FAILED) {
		fail("trap", "mmap", errno, 0);
		return;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = segv;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL)) {
		fail("trap", "sigaction", errno, 0);
		return;
	}
	MEASURE_AFTER("trap", PROT("trap", vm, 1, PROT_READ), { *(volatile char *)vm = 1; });
	MEASURE_AFTER("prot1", PROT("prot1", vm, 1, PROT_READ | PROT_WRITE),
		      PROT("prot1", vm, 1, PROT_READ));
	MEASURE_AFTER("unprot1", PROT("unprot1", vm, 1, PROT_READ),
		      PROT("unprot1", vm, 1, PROT_READ | PROT_WRITE));
	MEASURE_AFTER("prot100", PROT("prot100", vm, 100, PROT_READ | PROT_WRITE),
		      PROT("prot100", vm, 100, PROT_READ));
	MEASURE_AFTER("unprot100", PROT("unprot100", vm, 100, PROT_READ),
		      PROT("unprot100", vm, 100, PROT_READ | PROT_WRITE));
	if (mprotect(vm + 4096, 99 * 4096, PROT_NONE)) {
		fail("appel1", "mprotect", errno, 0);
		return;
	}
	open_page = vm;
	appel1_mode = 1;
	MEASURE_AFTER("appel1", {}, { (void)*(volatile char *)(vm + (1 + i % 99) * 4096); });
	appel1_mode = 0;
	{
		int ok = 1;
		for (int i = 0; i < WARMUP + ITERS && ok; i++) {
			int64_t c0 = now_ns();
			uint64_t t0 = rdtsc();
			PROT("appel2", vm, 100, PROT_NONE);
			for (int k = 0; k < 100; k++)
				(void)*(volatile char *)(vm + k * 4096);
			uint64_t t1 = rdtsc();
			int64_t c1 = now_ns();
			if (i >= WARMUP) {
				tsc_samples[i - WARMUP] = (t1 - t0) / 100;
				ns_samples[i - WARMUP] = (c1 - c0) / 100;
			}
		}
		if (ok && !segv_failed)
			report("appel2");
	}
}

/* Kernel log lines about the TSC and clock sources, for the report. */
static void print_info(void)
{
	char buf[256] = "";
	if (getpid() == 1) {
		mkdir("/sys", 0755);
		mount("sysfs", "/sys", "sysfs", 0, NULL);
	}
	{
		int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
			      O_RDONLY);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof buf - 1);
			buf[n > 0 ? n : 0] = 0;
			buf[strcspn(buf, "\n")] = 0;
			close(fd);
			say("info: clocksource=%s", buf);
		}
	}
	/* The CPU bugs this kernel sees on this CPU, and what it does. */
	DIR *dir = opendir("/sys/devices/system/cpu/vulnerabilities");
	if (dir) {
		char all[1024] = "";
		size_t used = 0;
		struct dirent *e;
		while ((e = readdir(dir)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char path[320];
			snprintf(path, sizeof path, "/sys/devices/system/cpu/vulnerabilities/%s",
				 e->d_name);
			int fd = open(path, O_RDONLY);
			if (fd < 0)
				continue;
			ssize_t n = read(fd, buf, sizeof buf - 1);
			close(fd);
			buf[n > 0 ? n : 0] = 0;
			buf[strcspn(buf, "\n")] = 0;
			if (strncmp(buf, "Not affected", 12) == 0)
				continue;
			int w = snprintf(all + used, sizeof all - used, "%s %s=\"%s\"",
					 used ? "," : "", e->d_name, buf);
			if (w < 0 || (size_t)w >= sizeof all - used)
				break;
			used += w;
		}
		closedir(dir);
		say("info: vulnerabilities:%s", all);
	}
	static char log[1 << 17];
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, log, sizeof log - 1);
	if (n <= 0)
		return;
	log[n] = 0;
	for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"))
		if (strstr(line, "tsc") || strstr(line, "TSC") ||
		    strstr(line, "clocksource") || strstr(line, "Linux version"))
			say("info: %s", line);
}

int main(void)
{
	/* The initramfs has /dev/console; be safe if it is missing. */
	if (getpid() == 1 && fcntl(1, F_GETFD) < 0) {
		mkdir("/dev", 0755);
		mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
		int fd = open("/dev/console", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
		}
	}
	/* First thing: the host times the boot to this line. */
	say("bench: start tsc=%llu", (unsigned long long)rdtsc());

	anchor_page_tables();

	MEASURE("empty", {});
	/* The empty row's unsubtracted ns median is the timer overhead. */
	{
		qsort(ns_samples, ITERS, sizeof ns_samples[0], cmp_i64);
		clock_overhead = (ns_samples[ITERS / 2 - 1] + ns_samples[ITERS / 2]) / 2;
	}

	MEASURE("null-syscall", {
		if (syscall(SYS_getpid) < 0) {
			fail("null-syscall", "getpid", errno, i);
			ok = 0;
		}
	});

	MEASURE("frame-alloc-free", {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			fail("frame-alloc-free", "mmap", errno, i);
			ok = 0;
		} else if (munmap(p, 4096)) {
			fail("frame-alloc-free", "munmap", errno, i);
			ok = 0;
		}
	});

	MEASURE("alloc-map-touch-unmap-free", {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (p == MAP_FAILED) {
			fail("alloc-map-touch-unmap-free", "mmap", errno, i);
			ok = 0;
		} else {
			*(volatile char *)p = 1;
			if (munmap(p, 4096)) {
				fail("alloc-map-touch-unmap-free", "munmap", errno, i);
				ok = 0;
			}
		}
	});

	MEASURE("contiguous-16", {
		void *p = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (p == MAP_FAILED) {
			fail("contiguous-16", "mmap", errno, i);
			ok = 0;
		} else if (munmap(p, 16 * 4096)) {
			fail("contiguous-16", "munmap", errno, i);
			ok = 0;
		}
	});

	/* A heap growing by 1 MiB: 256 pages populated, each written, then
	 * unmapped (exo: one contiguous run, one map of all of it). */
	MEASURE("grow-1mib", {
		char *p = mmap(NULL, 256 * 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (p == MAP_FAILED) {
			fail("grow-1mib", "mmap", errno, i);
			ok = 0;
		} else {
			for (int page = 0; page < 256; page++)
				((volatile char *)p)[page * 4096] = 1;
			if (munmap(p, 256 * 4096)) {
				fail("grow-1mib", "munmap", errno, i);
				ok = 0;
			}
		}
	});

	cap_transfer_row();
	appel_li_rows();

	say("bench: end tsc=%llu failures=%d", (unsigned long long)rdtsc(), failures);
	print_info();
	/* Only as init: run elsewhere (a test on the host), just exit. */
	if (getpid() != 1)
		return failures ? 1 : 0;
	sync();
	reboot(RB_POWER_OFF);
	/* Not reached; if it is, init's exit panics and panic=-1 reboots,
	 * which QEMU's -no-reboot turns into an exit. */
	say("bench: reboot(RB_POWER_OFF) failed: errno=%d", errno);
	return 1;
}
