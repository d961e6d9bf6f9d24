// A UDP echo for the Kubernetes end-to-end tests' busybox image (busybox has
// no UDP server and its nc no UDP mode). Built static, so it runs in an image
// with no libraries.
//
//   udpecho serve PORT         answer each datagram with "<hostname> <peer ip>"
//   udpecho ask IP PORT [SECS] send one datagram, print the answer; exit 1
//                              when none came within SECS (default 3)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int usage(void)
{
	fprintf(stderr, "usage: udpecho serve PORT | udpecho ask IP PORT [SECS]\n");
	return 2;
}

static int port_of(const char *s)
{
	char *end;
	long p = strtol(s, &end, 10);
	return (*s && !*end && p > 0 && p < 65536) ? (int)p : -1;
}

static int serve(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	char host[64] = "?", buf[512], out[160];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	gethostname(host, sizeof(host) - 1);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		perror("udpecho: bind");
		return 1;
	}
	for (;;) {
		struct sockaddr_in peer;
		socklen_t len = sizeof(peer);
		char ip[INET_ADDRSTRLEN];
		int n;

		if (recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &len) < 0)
			continue;
		inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
		n = snprintf(out, sizeof(out), "%s %s\n", host, ip);
		sendto(fd, out, (size_t)n, 0, (struct sockaddr *)&peer, len);
	}
}

static int ask(const char *ip, int port, int secs)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	struct timeval tv = { .tv_sec = secs };
	char buf[512];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	ssize_t n;

	if (fd < 0 || inet_pton(AF_INET, ip, &a.sin_addr) != 1)
		return usage();
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || send(fd, "?", 1, 0) != 1) {
		perror("udpecho: send");
		return 1;
	}
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	if (n < 0) {
		perror("udpecho: no answer");
		return 1;
	}
	buf[n] = 0;
	fputs(buf, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "serve") && port_of(argv[2]) > 0)
		return serve(port_of(argv[2]));
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "ask") && port_of(argv[3]) > 0)
		return ask(argv[2], port_of(argv[3]), argc == 5 ? atoi(argv[4]) : 3);
	return usage();
}
