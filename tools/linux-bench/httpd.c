/*
 * The Linux half of `cargo xtask bench net`: a static /init that loads
 * virtio-net (modules in the cloud kernel, carried in the initramfs under
 * /lib), gives eth0 QEMU's user-network address (10.0.2.15/24) and serves
 * the same files as exo's httpd on port 80, HTTP/1.1 with keep-alive:
 *
 *   /hello  "hello, world\n"
 *   /1mib   1 MiB, byte i = (i mod 251) xor (i >> 16)
 *   /quit   "httpd: bye\n", then the machine powers off
 *
 * One thread, non-blocking sockets, poll(2): the usual small static
 * server. It prints "linux-httpd: listening" when it is ready.
 *
 * Build: gcc -static -O2 -o init httpd.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_CONNS 64
#define MAX_REQUEST 8192
#define MIB (1 << 20)

static const char *modules[] = {
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
	"virtio_pci", "failover", "net_failover", "virtio_net",
};

static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	if (write(1, line, n) < 0)
		return;
}

static void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	say("linux-httpd: reboot failed: errno=%d", errno);
	_exit(1);
}

static void load_modules(void)
{
	for (size_t i = 0; i < sizeof modules / sizeof *modules; i++) {
		char path[64];
		snprintf(path, sizeof path, "/lib/%s.ko", modules[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) != 0) {
			if (errno != EEXIST) {
				say("linux-httpd: loading %s: errno=%d", path, errno);
				power_off();
			}
		}
		close(fd);
	}
}

static void ifreq_addr(struct ifreq *ifr, const char *address)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr->ifr_addr;
	memset(sin, 0, sizeof *sin);
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, address, &sin->sin_addr);
}

/* eth0 (appears once virtio_net has probed) gets 10.0.2.15/24, up. */
static void configure(void)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct ifreq ifr;
	for (int tries = 0;; tries++) {
		memset(&ifr, 0, sizeof ifr);
		strcpy(ifr.ifr_name, "eth0");
		if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0)
			break;
		if (tries > 500) {
			say("linux-httpd: no eth0");
			power_off();
		}
		usleep(10000);
	}
	ifreq_addr(&ifr, "10.0.2.15");
	if (ioctl(s, SIOCSIFADDR, &ifr) != 0)
		say("linux-httpd: SIOCSIFADDR: errno=%d", errno);
	ifreq_addr(&ifr, "255.255.255.0");
	if (ioctl(s, SIOCSIFNETMASK, &ifr) != 0)
		say("linux-httpd: SIOCSIFNETMASK: errno=%d", errno);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
			say("linux-httpd: SIOCSIFFLAGS: errno=%d", errno);
	}
	close(s);
}

struct conn {
	int fd;
	char req[MAX_REQUEST];
	size_t len;
	/* The reply being sent: head, then pattern bytes. */
	char head[256];
	size_t head_len, head_sent;
	size_t body_len, body_sent;
	int close_after, quit;
};

static struct conn conns[MAX_CONNS];
static unsigned char mib[MIB];

static void reply(struct conn *c, const char *body, size_t pattern_len, int keep)
{
	size_t body_len = body ? strlen(body) : pattern_len;
	int n = snprintf(c->head, sizeof c->head,
			 "HTTP/1.1 200 OK\r\nServer: linux-httpd\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\nConnection: %s\r\n\r\n%s",
			 body_len, keep ? "keep-alive" : "close", body ? body : "");
	c->head_len = n;
	c->head_sent = 0;
	c->body_len = body ? 0 : pattern_len;
	c->body_sent = 0;
	c->close_after = !keep;
}

/* Parses one request from c->req; 1 if a reply was queued. */
static int handle(struct conn *c)
{
	char *end = memmem(c->req, c->len, "\r\n\r\n", 4);
	if (!end) {
		if (c->len == MAX_REQUEST)
			c->close_after = 2;
		return 0;
	}
	size_t used = end + 4 - c->req;
	int keep = !memmem(c->req, used, "Connection: close", 17);
	if (!strncmp(c->req, "GET /hello ", 11))
		reply(c, "hello, world\n", 0, keep);
	else if (!strncmp(c->req, "GET /1mib ", 10))
		reply(c, NULL, MIB, keep);
	else if (!strncmp(c->req, "GET /quit ", 10)) {
		reply(c, "httpd: bye\n", 0, 0);
		c->quit = 1;
	} else
		reply(c, "other\n", 0, 0);
	memmove(c->req, c->req + used, c->len - used);
	c->len -= used;
	return 1;
}

static void drop(struct conn *c)
{
	close(c->fd);
	c->fd = -1;
}

/* Sends what it can; 1 when the reply is all out. */
static int flush(struct conn *c)
{
	while (c->head_sent < c->head_len) {
		ssize_t n = send(c->fd, c->head + c->head_sent, c->head_len - c->head_sent,
				 MSG_NOSIGNAL);
		if (n <= 0)
			return n < 0 && errno == EAGAIN ? 0 : -1;
		c->head_sent += n;
	}
	while (c->body_sent < c->body_len) {
		ssize_t n = send(c->fd, mib + c->body_sent, c->body_len - c->body_sent,
				 MSG_NOSIGNAL);
		if (n <= 0)
			return n < 0 && errno == EAGAIN ? 0 : -1;
		c->body_sent += n;
	}
	return 1;
}

int main(void)
{
	for (size_t i = 0; i < MIB; i++)
		mib[i] = (unsigned char)((i % 251) ^ (i >> 16));
	load_modules();
	configure();
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(80)};
	if (bind(l, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(l, 128) != 0) {
		say("linux-httpd: bind/listen: errno=%d", errno);
		power_off();
	}
	for (int i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;
	say("linux-httpd: listening on 10.0.2.15:80");
	struct pollfd pfd[MAX_CONNS + 1];
	int quit = 0;
	while (!quit) {
		int map[MAX_CONNS + 1], n = 0;
		pfd[n] = (struct pollfd){.fd = l, .events = POLLIN};
		map[n++] = -1;
		for (int i = 0; i < MAX_CONNS; i++) {
			struct conn *c = &conns[i];
			if (c->fd < 0)
				continue;
			int sending = c->head_sent < c->head_len || c->body_sent < c->body_len;
			pfd[n] = (struct pollfd){.fd = c->fd, .events = sending ? POLLOUT : POLLIN};
			map[n++] = i;
		}
		if (poll(pfd, n, -1) < 0)
			continue;
		for (int k = 0; k < n; k++) {
			if (!pfd[k].revents)
				continue;
			if (map[k] < 0) {
				for (;;) {
					int fd = accept4(l, NULL, NULL, SOCK_NONBLOCK);
					if (fd < 0)
						break;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					int i = 0;
					while (i < MAX_CONNS && conns[i].fd >= 0)
						i++;
					if (i == MAX_CONNS) {
						close(fd);
						continue;
					}
					memset(&conns[i], 0, sizeof conns[i]);
					conns[i].fd = fd;
				}
				continue;
			}
			struct conn *c = &conns[map[k]];
			int sending = c->head_sent < c->head_len || c->body_sent < c->body_len;
			if (!sending) {
				ssize_t got = recv(c->fd, c->req + c->len, MAX_REQUEST - c->len, 0);
				if (got <= 0) {
					if (got == 0 || errno != EAGAIN)
						drop(c);
					continue;
				}
				c->len += got;
			}
			for (;;) {
				if (c->head_sent == c->head_len && c->body_sent == c->body_len) {
					if (c->quit)
						quit = 1;
					if (c->close_after) {
						drop(c);
						break;
					}
					if (!handle(c))
						break;
				}
				int done = flush(c);
				if (done < 0) {
					drop(c);
					break;
				}
				if (!done)
					break;
			}
		}
	}
	usleep(200000);
	say("linux-httpd: quit");
	power_off();
	return 0;
}
