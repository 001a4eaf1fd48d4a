/*
 * t/linkwatch.c - runs the link monitor (net/link.c) on one peer address
 * for t/net-link.sh: `linkwatch PEER_IP` prints "state up|down IFNAME" once
 * at start and again on every transition, and exits 0 on SIGTERM/SIGINT.
 *
 * It must never: buffer a state line (the test times them), or print a
 * line for anything but the start and a transition the monitor reported.
 */
#include "config.h"

#include "net/link.h"
#include "net/log.h"
#include "net/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

struct watch {
	struct link_mon *lm;
	unsigned changes;
};

static void print_state(const struct watch *w, enum link_state st)
{
	printf("state %s %s\n", link_state_name(st), link_ifname(w->lm));
	fflush(stdout);
}

static void on_link(void *ctx, enum link_state st)
{
	struct watch *w = ctx;

	w->changes++;
	print_state(w, st);
}

static void on_signal(struct loop *l, int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	loop_stop(l);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	const struct sockaddr *peers[1];
	socklen_t lens[1];
	struct watch w = { 0 };
	struct loop *l;
	int err, rc = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: linkwatch PEER_IP\n");
		return 2;
	}
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, argv[1], &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(7);
		lens[0] = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, argv[1], &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(7);
		lens[0] = sizeof(struct sockaddr_in6);
	} else {
		fprintf(stderr, "linkwatch: not an IP address: %s\n", argv[1]);
		return 2;
	}
	peers[0] = (const struct sockaddr *)&ss;

	log_set_prefix("linkwatch");
	l = loop_new();
	if (!l) {
		fprintf(stderr, "linkwatch: loop_new: %s\n", strerror(errno));
		return 1;
	}
	if ((err = loop_signal(l, SIGTERM, on_signal, NULL)) < 0 ||
	    (err = loop_signal(l, SIGINT, on_signal, NULL)) < 0) {
		fprintf(stderr, "linkwatch: loop_signal: %s\n", strerror(-err));
		goto free_loop;
	}
	err = link_new(l, peers, lens, 1, on_link, &w, &w.lm);
	if (err < 0) {
		fprintf(stderr, "linkwatch: link_new: %s\n", strerror(-err));
		goto free_loop;
	}
	print_state(&w, link_state(w.lm));
	err = loop_run(l);
	if (err < 0) {
		fprintf(stderr, "linkwatch: loop_run: %s\n", strerror(-err));
		goto free_link;
	}
	rc = 0;
free_link:
	link_free(w.lm);
free_loop:
	loop_free(l);
	return rc;
}
