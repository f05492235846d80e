// SPDX-License-Identifier: GPL-2.0
/*
 * loop_compat32: issues loop ioctls as a 32-bit (i386) process, so that they reach the driver's
 * ->compat_ioctl with the 32-bit `struct loop_info` (compat_loop_info) layout.
 *
 * The rootfs has no 32-bit libc, so this is freestanding: raw `int $0x80` system calls, no
 * headers. Built in the guest with
 *   clang --target=i386-linux-gnu -static -nostdlib -ffreestanding -fuse-ld=lld
 *
 * Usage: loop_compat32 [r:]DEV OP [ARGS...]   ("r:" opens DEV read-only)
 *   set_fd FILE | change_fd FILE | configure FILE BLOCK_SIZE OFFSET
 *   get_status | get_status_null | set_status OFFSET FLAGS NAME
 *   get_status64 | set_status64 OFFSET SIZELIMIT FLAGS
 *   ioctl CMD ARG                  (any command with an integer argument)
 * Prints the fields read, then "ok" or "errno N"; exits 0 either way, 2 on bad usage.
 */

typedef unsigned int u32;
typedef unsigned long long u64;

#define O_RDONLY 0
#define O_RDWR 2
#define O_LARGEFILE 0100000

#define LOOP_SET_FD 0x4C00
#define LOOP_SET_STATUS 0x4C02
#define LOOP_GET_STATUS 0x4C03
#define LOOP_SET_STATUS64 0x4C04
#define LOOP_GET_STATUS64 0x4C05
#define LOOP_CHANGE_FD 0x4C06
#define LOOP_CONFIGURE 0x4C0A

#define LO_NAME_SIZE 64
#define LO_KEY_SIZE 32

/* The native i386 `struct loop_info`: __kernel_old_dev_t is 16 bits, long 32. */
struct loop_info {
	int lo_number;
	unsigned short lo_device;
	unsigned long lo_inode;
	unsigned short lo_rdevice;
	int lo_offset;
	int lo_encrypt_type;
	int lo_encrypt_key_size;
	int lo_flags;
	char lo_name[LO_NAME_SIZE];
	unsigned char lo_encrypt_key[LO_KEY_SIZE];
	unsigned long lo_init[2];
	char reserved[4];
};
_Static_assert(sizeof(struct loop_info) == 140, "i386 loop_info");

/* loop_info64 is the same on both ABIs (the u64 fields happen to stay 8-aligned). */
struct loop_info64 {
	u64 lo_device, lo_inode, lo_rdevice, lo_offset, lo_sizelimit;
	u32 lo_number, lo_encrypt_type, lo_encrypt_key_size, lo_flags;
	unsigned char lo_file_name[LO_NAME_SIZE];
	unsigned char lo_crypt_name[LO_NAME_SIZE];
	unsigned char lo_encrypt_key[LO_KEY_SIZE];
	u64 lo_init[2];
};
_Static_assert(sizeof(struct loop_info64) == 232, "loop_info64");

struct loop_config {
	u32 fd;
	u32 block_size;
	struct loop_info64 info;
	u64 reserved[8];
};
_Static_assert(sizeof(struct loop_config) == 304, "loop_config");

static long sys3(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return ret;
}

#define SYS_exit 1
#define SYS_write 4
#define SYS_open 5
#define SYS_ioctl 54

/* Global: the compiler may call it for struct initialisation. Volatile: so that it does not turn
 * this loop into a call to itself. */
void *memset(void *d, int c, unsigned long n)
{
	volatile unsigned char *p = d;

	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

static unsigned long slen(const char *s)
{
	unsigned long n = 0;

	while (s[n])
		n++;
	return n;
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static void put(const char *s)
{
	sys3(SYS_write, 1, (long)s, (long)slen(s));
}

static void put_u64(u64 v)
{
	char buf[24];
	int i = sizeof(buf) - 1;

	buf[i] = 0;
	/* i386 has no 64-bit division instruction and there is no libgcc: divide by 10 in 16-bit
	 * steps, each of which fits 32-bit arithmetic. */
	do {
		u32 r = 0;
		u64 q = 0;

		for (int shift = 48; shift >= 0; shift -= 16) {
			u32 cur = (r << 16) | (u32)((v >> shift) & 0xffff);

			q |= (u64)(cur / 10) << shift;
			r = cur % 10;
		}
		buf[--i] = (char)('0' + r);
		v = q;
	} while (v);
	put(buf + i);
}

static void put_i64(long long v)
{
	if (v < 0) {
		put("-");
		put_u64(-(u64)v);
	} else {
		put_u64((u64)v);
	}
}

static void field(const char *name, long long v)
{
	put(name);
	put("=");
	put_i64(v);
	put(" ");
}

static void name_field(const char *name, const char *s, int max)
{
	char buf[LO_NAME_SIZE + 1];
	int i;

	for (i = 0; i < max && s[i]; i++)
		buf[i] = s[i];
	buf[i] = 0;
	put(name);
	put("=");
	put(buf);
	put(" ");
}

static __attribute__((noreturn)) void die(int code)
{
	sys3(SYS_exit, code, 0, 0);
	__builtin_unreachable();
}

/* Decimal or 0x hex, optionally negative; bad input ends the program (usage error). */
static long long num(const char *s)
{
	int neg = 0, base = 10;
	u64 v = 0;

	if (*s == '-')
		neg = 1, s++;
	if (s[0] == '0' && s[1] == 'x')
		base = 16, s += 2;
	if (!*s)
		die(2);
	for (; *s; s++) {
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && (*s | 0x20) >= 'a' && (*s | 0x20) <= 'f')
			d = (*s | 0x20) - 'a' + 10;
		else
			die(2);
		v = v * base + d;
	}
	return neg ? -(long long)v : (long long)v;
}

static long xopen(const char *path, int flags)
{
	long fd = sys3(SYS_open, (long)path, flags | O_LARGEFILE, 0);

	if (fd < 0) {
		put("open failed: errno ");
		put_i64(-fd);
		put("\n");
		die(1);
	}
	return fd;
}

static void result(long ret)
{
	if (ret < 0) {
		put("errno ");
		put_i64(-ret);
	} else {
		put("ok ");
		put_i64(ret);
	}
	put("\n");
}

static int run(int argc, char **argv)
{
	const char *dev = argv[1], *op = argv[2];
	int flags = O_RDWR;
	long fd, ret;

	if (dev[0] == 'r' && dev[1] == ':')
		flags = O_RDONLY, dev += 2;
	fd = xopen(dev, flags);

	if ((streq(op, "set_fd") || streq(op, "change_fd")) && argc == 4) {
		long file = xopen(argv[3], O_RDWR);

		ret = sys3(SYS_ioctl, fd, streq(op, "set_fd") ? LOOP_SET_FD : LOOP_CHANGE_FD, file);
	} else if (streq(op, "configure") && argc == 6) {
		struct loop_config c;

		memset(&c, 0, sizeof(c));
		c.fd = (u32)xopen(argv[3], O_RDWR);
		c.block_size = (u32)num(argv[4]);
		c.info.lo_offset = (u64)num(argv[5]);
		ret = sys3(SYS_ioctl, fd, LOOP_CONFIGURE, (long)&c);
	} else if (streq(op, "get_status") && argc == 3) {
		struct loop_info i;

		memset(&i, 0xa5, sizeof(i));
		ret = sys3(SYS_ioctl, fd, LOOP_GET_STATUS, (long)&i);
		if (ret == 0) {
			field("number", i.lo_number);
			field("device", i.lo_device);
			field("inode", i.lo_inode);
			field("rdevice", i.lo_rdevice);
			field("offset", i.lo_offset);
			field("encrypt_type", i.lo_encrypt_type);
			field("encrypt_key_size", i.lo_encrypt_key_size);
			field("flags", i.lo_flags);
			name_field("name", i.lo_name, LO_NAME_SIZE);
			field("init0", (long long)i.lo_init[0]);
			field("init1", (long long)i.lo_init[1]);
			field("key0", i.lo_encrypt_key[0]);
			field("reserved0", i.reserved[0]);
			put("\n");
		}
	} else if (streq(op, "get_status_null") && argc == 3) {
		ret = sys3(SYS_ioctl, fd, LOOP_GET_STATUS, 0);
	} else if (streq(op, "set_status") && argc == 6) {
		struct loop_info i;
		unsigned long n = slen(argv[5]);

		memset(&i, 0, sizeof(i));
		i.lo_offset = (int)num(argv[3]);
		i.lo_flags = (int)num(argv[4]);
		for (unsigned long k = 0; k < n && k < LO_NAME_SIZE - 1; k++)
			i.lo_name[k] = argv[5][k];
		ret = sys3(SYS_ioctl, fd, LOOP_SET_STATUS, (long)&i);
	} else if (streq(op, "get_status64") && argc == 3) {
		struct loop_info64 i;

		memset(&i, 0xa5, sizeof(i));
		ret = sys3(SYS_ioctl, fd, LOOP_GET_STATUS64, (long)&i);
		if (ret == 0) {
			field("number", i.lo_number);
			field("offset", (long long)i.lo_offset);
			field("sizelimit", (long long)i.lo_sizelimit);
			field("flags", i.lo_flags);
			name_field("file_name", (const char *)i.lo_file_name, LO_NAME_SIZE);
			put("\n");
		}
	} else if (streq(op, "set_status64") && argc == 6) {
		struct loop_info64 i;

		memset(&i, 0, sizeof(i));
		i.lo_offset = (u64)num(argv[3]);
		i.lo_sizelimit = (u64)num(argv[4]);
		i.lo_flags = (u32)num(argv[5]);
		ret = sys3(SYS_ioctl, fd, LOOP_SET_STATUS64, (long)&i);
	} else if (streq(op, "ioctl") && argc == 5) {
		ret = sys3(SYS_ioctl, fd, (long)num(argv[3]), (long)num(argv[4]));
	} else {
		die(2);
	}
	result(ret);
	return 0;
}

/* The i386 process entry: argc at 0(%esp), then argv[]. */
__attribute__((used)) static void start_c(long *sp)
{
	int argc = (int)sp[0];

	if (argc < 3)
		die(2);
	die(run(argc, (char **)(sp + 1)));
}

__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	xorl %ebp, %ebp\n"
	"	movl %esp, %eax\n"
	"	andl $-16, %esp\n"
	"	subl $12, %esp\n"
	"	pushl %eax\n"
	"	call start_c\n"
	"	hlt\n");
