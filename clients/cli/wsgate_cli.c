/* wsgate-cli: the management API from a shell, on libwsgate. Keys come
 * from where the AWS CLI finds them (environment, ~/.aws/credentials,
 * ~/.aws/config), and failures read and exit as the AWS CLI's do:
 *   0 success, 252 bad usage, 253 bad configuration (a missing profile),
 *   254 the gateway answered with an error, 255 anything else (no answer). */
#define _GNU_SOURCE
#include "wsgate_client.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_USAGE = 252, EXIT_CONFIG = 253, EXIT_SERVICE = 254, EXIT_OTHER = 255 };

struct creds {
	char *access_key, *secret, *token, *region;
};

struct opts {
	const char *command, *endpoint, *profile, *region, *id, *data, *data_file, *cursor,
		*ca_bundle, *channel;
	unsigned limit;
	int no_verify, timeout_ms;
	char **more_ids; /* post: IDs after the first */
	int n_more;
};


/* A progress line only on a terminal, and never in CI (the rule of the
 * benchmark and the soak run). */
static int progress_wanted(void)
{
	const char *ci = getenv("CI");

	if (ci && *ci && strcmp(ci, "0") && strcmp(ci, "false"))
		return 0;
	return isatty(STDERR_FILENO);
}

static void usage(FILE *f)
{
	fputs("usage: wsgate-cli COMMAND --endpoint URL [options] [CONNECTION_ID]\n"
	      "\n"
	      "commands:\n"
	      "  post ID... (--data DATA | --data-file FILE)\n"
	      "                                            send a message to connections\n"
	      "                                            (several IDs: 16 at a time)\n"
	      "  get ID                                    print a connection's record (JSON)\n"
	      "  delete ID                                 close a connection\n"
	      "  list [--limit N] [--cursor C] [--channel CHANNEL]\n"
	      "                                            list connections (all pages\n"
	      "                                            unless --limit is given)\n"
	      "  publish CHANNEL (--data | --data-file)    send to a channel's members\n"
	      "  join ID CHANNEL                           add a connection to a channel\n"
	      "  leave ID CHANNEL                          take it out of the channel\n"
	      "  broadcast (--data | --data-file)          send to every connection of the\n"
	      "                                            stage\n"
	      "\n"
	      "options:\n"
	      "  --endpoint URL        http[s]://host:port[/stage] (also --endpoint-url)\n"
	      "  --profile NAME        keys and region from ~/.aws/credentials, ~/.aws/config\n"
	      "  --region R            the region to sign for\n"
	      "  --connection-id ID    the ID, instead of the positional argument\n"
	      "  --channel CHANNEL     publish, join, leave: the channel; list: only its\n"
	      "                        members\n"
	      "  --data-file FILE      the message from a file ('-': standard input)\n"
	      "  --ca-bundle FILE      CAs to trust for https:// (AWS_CA_BUNDLE)\n"
	      "  --no-verify-ssl       do not verify the gateway's certificate\n"
	      "  --cli-read-timeout S  seconds to wait for an answer (default 30)\n"
	      "\n"
	      "Keys: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN sent when\n"
	      "set), else the profile (--profile, AWS_PROFILE, or default) of\n"
	      "~/.aws/credentials and ~/.aws/config; none: requests are not signed.\n",
	      f);
}

static int usage_error(const char *fmt, const char *arg)
{
	usage(stderr);
	fputs("\nwsgate-cli: error: ", stderr);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

/* --- credentials: the AWS CLI's shared files --- */

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static void set_field(char **dst, const char *value)
{
	if (!*dst)
		*dst = strdup(value);
}

/* Reads [section] of an INI file into the fields still unset. In the
 * config file a profile is [profile NAME] (and [default]); in the
 * credentials file it is [NAME]. Returns 1 when the section exists. */
static int read_profile(const char *path, const char *name, int config, struct creds *cr)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, want[300];
	size_t cap = 0;
	int in = 0, found = 0;

	if (!f)
		return 0;
	if (config && strcmp(name, "default"))
		snprintf(want, sizeof(want), "profile %s", name);
	else
		snprintf(want, sizeof(want), "%s", name);
	while (getline(&line, &cap, f) > 0) {
		char *s = trim(line), *eq;

		if (*s == '#' || *s == ';' || !*s)
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');

			if (end)
				*end = '\0';
			in = !strcmp(trim(s + 1), want);
			found |= in;
			continue;
		}
		if (!in || !(eq = strchr(s, '=')))
			continue;
		*eq = '\0';
		s = trim(s);
		if (!strcmp(s, "aws_access_key_id"))
			set_field(&cr->access_key, trim(eq + 1));
		else if (!strcmp(s, "aws_secret_access_key"))
			set_field(&cr->secret, trim(eq + 1));
		else if (!strcmp(s, "aws_session_token"))
			set_field(&cr->token, trim(eq + 1));
		else if (!strcmp(s, "region"))
			set_field(&cr->region, trim(eq + 1));
	}
	free(line);
	fclose(f);
	return found;
}

static void aws_file(char *out, size_t len, const char *env, const char *name)
{
	const char *v = getenv(env), *home = getenv("HOME");

	if (v && *v)
		snprintf(out, len, "%s", v);
	else
		snprintf(out, len, "%s/.aws/%s", home ? home : ".", name);
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static void free_creds(struct creds *cr)
{
	if (cr->secret)
		memset(cr->secret, 0, strlen(cr->secret));
	free(cr->access_key);
	free(cr->secret);
	free(cr->token);
	free(cr->region);
}

/* The AWS CLI's order: --profile beats the key variables; otherwise the
 * variables, then AWS_PROFILE or "default". The region: --region,
 * AWS_REGION, AWS_DEFAULT_REGION, then the profile's. */
static int load_creds(const struct opts *o, struct creds *cr)
{
	const char *profile = o->profile ? o->profile : env("AWS_PROFILE");
	char cred_path[4096], conf_path[4096];
	int found;

	if (!o->profile && env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY")) {
		cr->access_key = strdup(env("AWS_ACCESS_KEY_ID"));
		cr->secret = strdup(env("AWS_SECRET_ACCESS_KEY"));
		if (env("AWS_SESSION_TOKEN"))
			cr->token = strdup(env("AWS_SESSION_TOKEN"));
	}
	if (o->region)
		cr->region = strdup(o->region);
	else if (env("AWS_REGION"))
		cr->region = strdup(env("AWS_REGION"));
	else if (env("AWS_DEFAULT_REGION"))
		cr->region = strdup(env("AWS_DEFAULT_REGION"));
	aws_file(cred_path, sizeof(cred_path), "AWS_SHARED_CREDENTIALS_FILE", "credentials");
	aws_file(conf_path, sizeof(conf_path), "AWS_CONFIG_FILE", "config");
	if (cr->access_key) {
		/* Keys from the environment; the region may still be the profile's. */
		if (!cr->region) {
			struct creds p = { .access_key = NULL };

			read_profile(conf_path, profile ? profile : "default", 1, &p);
			cr->region = p.region;
			p.region = NULL;
			free_creds(&p);
		}
		return 0;
	}
	found = read_profile(cred_path, profile ? profile : "default", 0, cr);
	found |= read_profile(conf_path, profile ? profile : "default", 1, cr);
	if (profile && !found) {
		fprintf(stderr, "\nThe config profile (%s) could not be found\n", profile);
		return EXIT_CONFIG;
	}
	if (cr->access_key && !cr->secret) {
		fprintf(stderr, "\nPartial credentials found in %s, missing: "
			"aws_secret_access_key\n", o->profile ? "shared-credentials-file" : "profile");
		return EXIT_CONFIG;
	}
	if (!cr->access_key) {
		free(cr->token);
		cr->token = NULL;
	}
	return 0;
}

/* --- the message --- */

static int read_data(const struct opts *o, char **out, size_t *len)
{
	FILE *f;
	char buf[65536];
	size_t n, cap = 0;

	*out = NULL;
	*len = 0;
	if (o->data) {
		*out = strdup(o->data);
		*len = strlen(o->data);
		return *out ? 0 : EXIT_OTHER;
	}
	f = strcmp(o->data_file, "-") ? fopen(o->data_file, "rb") : stdin;
	if (!f) {
		fprintf(stderr, "\nError parsing parameter '--data-file': Unable to load "
			"paramfile %s: %s\n", o->data_file, strerror(errno));
		return EXIT_USAGE;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (*len + n > cap) {
			char *p = realloc(*out, cap = (*len + n) * 2);

			if (!p)
				goto fail;
			*out = p;
		}
		memcpy(*out + *len, buf, n);
		*len += n;
	}
	if (ferror(f))
		goto fail;
	if (f != stdin)
		fclose(f);
	return 0;
fail:
	fprintf(stderr, "\nError reading %s: %s\n", o->data_file, strerror(errno));
	if (f != stdin)
		fclose(f);
	free(*out);
	*out = NULL;
	return EXIT_OTHER;
}

/* --- answers --- */

static const char *operation(const char *command)
{
	return !strcmp(command, "post") ? "PostToConnection" :
	       !strcmp(command, "get") ? "GetConnection" :
	       !strcmp(command, "delete") ? "DeleteConnection" :
	       !strcmp(command, "list") ? "ListConnections" :
	       !strcmp(command, "join") ? "JoinChannel" :
	       !strcmp(command, "leave") ? "LeaveChannel" :
	       !strcmp(command, "broadcast") ? "Broadcast" : "PublishToChannel";
}

/* As botocore words it: the error type (or the status when the answer
 * has none) and the message, which may be empty. */
static int report_id(const char *command, const char *id, int rc, const wsgate_response_t *res)
{
	char status[16];

	if (rc < 0) {
		fprintf(stderr, "\n%s%s%s\n", id ? id : "", id ? ": " : "",
			res->error[0] ? res->error : wsgate_strerror(rc));
		return EXIT_OTHER;
	}
	if (res->status < 300)
		return 0;
	snprintf(status, sizeof(status), "%d", res->status);
	fprintf(stderr, "\n%s%sAn error occurred (%s) when calling the %s operation: %s\n",
		id ? id : "", id ? ": " : "",
		res->error_type && *res->error_type ? res->error_type : status,
		operation(command), res->message ? res->message : "");
	return EXIT_SERVICE;
}

static int report(const char *command, int rc, const wsgate_response_t *res)
{
	return report_id(command, NULL, rc, res);
}

static void print_json(const char *body, size_t len)
{
	json_t *j = json_loadb(body, len, 0, NULL);

	if (!j) {
		fwrite(body, 1, len, stdout);
		if (len && body[len - 1] != '\n')
			putchar('\n');
		return;
	}
	json_dumpf(j, stdout, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(j);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every page unless --limit: the items gathered into one array, with a
 * progress line on a terminal (never in a pipe or CI log). */
static int list_all(wsgate_client_t *c, const struct opts *o)
{
	json_t *all = json_array(), *out;
	char *cursor = o->cursor ? strdup(o->cursor) : NULL;
	int progress = progress_wanted(), code = 0, pages = 0;
	double t0 = now_s();

	for (;;) {
		wsgate_response_t res;
		json_t *page, *items, *next;
		int rc = wsgate_list(c, o->limit, cursor, o->channel, &res);

		if ((code = report("list", rc, &res))) {
			wsgate_response_dispose(&res);
			break;
		}
		page = json_loadb(res.body, res.body_len, 0, NULL);
		items = json_object_get(page, "items");
		next = json_object_get(page, "cursor");
		wsgate_response_dispose(&res);
		if (!json_is_array(items)) {
			fprintf(stderr, "\nThe gateway's answer to ListConnections has no items\n");
			json_decref(page);
			code = EXIT_OTHER;
			break;
		}
		json_array_extend(all, items);
		free(cursor);
		cursor = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
		json_decref(page);
		pages++;
		if (progress) {
			double dt = now_s() - t0;

			fprintf(stderr, "\rlisted %zu connections, %d pages, %.0f/s ",
				json_array_size(all), pages, dt > 0 ? (double)json_array_size(all) / dt : 0);
		}
		if (!cursor || o->limit)
			break;
	}
	if (progress && pages)
		fputs("\r\033[K", stderr);
	if (!code) {
		out = json_pack("{s:O}", "items", all);
		if (o->limit)
			json_object_set_new(out, "cursor", cursor ? json_string(cursor) : json_null());
		json_dumpf(out, stdout, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(out);
	}
	free(cursor);
	json_decref(all);
	return code;
}

#define MAX_IN_FLIGHT 16

struct flight {
	wsgate_req_t *r;
	const char *id;
	double deadline;
};

/* One request finished (or timed out): its error line, and the worst
 * exit code so far. */
static void land(struct flight *f, int rc, int *worst, int *failed)
{
	int code = report_id("post", f->id, rc, wsgate_req_response(f->r));

	if (code > *worst)
		*worst = code;
	*failed += code != 0;
	wsgate_req_destroy(f->r);
	f->r = NULL;
}

/* Several IDs: libwsgate's non-blocking requests, MAX_IN_FLIGHT at a
 * time, driven by one poll(). Each failure gets its line, prefixed by the
 * ID; the exit code is the worst one. */
static int post_many(wsgate_client_t *c, const struct opts *o, const char *data, size_t len)
{
	struct flight fl[MAX_IN_FLIGHT];
	struct pollfd pfd[MAX_IN_FLIGHT];
	int n = o->n_more + 1, next = 0, done = 0, live = 0, worst = 0, failed = 0;
	int progress = progress_wanted();
	double timeout = (o->timeout_ms ? o->timeout_ms : 30000) / 1000.0, t0 = now_s();

	while (done < n) {
		double now;

		while (live < MAX_IN_FLIGHT && next < n) {
			wsgate_call_t call = { .op = WSGATE_POST, .data = data, .len = len };
			struct flight *f = &fl[live];

			f->id = call.target = next ? o->more_ids[next - 1] : o->id;
			next++;
			f->deadline = now_s() + timeout;
			if (wsgate_req_start(c, &call, &f->r) == WSGATE_ERR_NOMEM && !f->r)
				return EXIT_OTHER;
			live++;
		}
		for (int i = 0; i < live; i++)
			pfd[i] = (struct pollfd){ .fd = wsgate_req_fd(fl[i].r),
						  .events = (short)wsgate_req_events(fl[i].r) };
		poll(pfd, (nfds_t)live, 100);
		now = now_s();
		for (int i = 0; i < live; i++) {
			int rc = WSGATE_AGAIN;

			if (pfd[i].fd < 0 || pfd[i].revents)
				rc = wsgate_req_step(fl[i].r);
			if (rc == WSGATE_AGAIN && now < fl[i].deadline)
				continue;
			if (rc == WSGATE_AGAIN)
				rc = WSGATE_ERR_TIMEOUT;
			land(&fl[i], rc, &worst, &failed);
			done++;
			fl[i] = fl[--live];
			pfd[i] = pfd[live];
			i--;
		}
		if (progress)
			fprintf(stderr, "\rposted %d/%d, %d failed, %.0f/s ", done - failed, n, failed,
				now > t0 ? done / (now - t0) : 0);
	}
	if (progress)
		fputs("\r\033[K", stderr);
	return worst;
}

static int takes_data(const char *command)
{
	return !strcmp(command, "post") || !strcmp(command, "publish") ||
	       !strcmp(command, "broadcast");
}

static int run(wsgate_client_t *c, const struct opts *o)
{
	wsgate_response_t res;
	char *data = NULL;
	size_t len = 0;
	int rc, code;

	if (!strcmp(o->command, "list"))
		return list_all(c, o);
	if (takes_data(o->command)) {
		if ((code = read_data(o, &data, &len)))
			return code;
		if (o->n_more) {
			code = post_many(c, o, data, len);
			free(data);
			return code;
		}
		rc = !strcmp(o->command, "post") ? wsgate_post(c, o->id, data, len, &res) :
		     !strcmp(o->command, "broadcast") ? wsgate_broadcast(c, data, len, &res) :
							wsgate_publish(c, o->channel, data, len, &res);
		free(data);
	} else if (!strcmp(o->command, "join")) {
		rc = wsgate_join(c, o->id, o->channel, &res);
	} else if (!strcmp(o->command, "leave")) {
		rc = wsgate_leave(c, o->id, o->channel, &res);
	} else if (!strcmp(o->command, "get")) {
		rc = wsgate_get(c, o->id, &res);
	} else {
		rc = wsgate_delete(c, o->id, &res);
	}
	code = report(o->command, rc, &res);
	if (!code && res.body_len)
		print_json(res.body, res.body_len);
	wsgate_response_dispose(&res);
	return code;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "endpoint", required_argument, NULL, 'e' },
		{ "endpoint-url", required_argument, NULL, 'e' },
		{ "profile", required_argument, NULL, 'p' },
		{ "region", required_argument, NULL, 'r' },
		{ "connection-id", required_argument, NULL, 'i' },
		{ "channel", required_argument, NULL, 'n' },
		{ "data", required_argument, NULL, 'd' },
		{ "data-file", required_argument, NULL, 'f' },
		{ "limit", required_argument, NULL, 'l' },
		{ "cursor", required_argument, NULL, 'c' },
		{ "ca-bundle", required_argument, NULL, 'a' },
		{ "no-verify-ssl", no_argument, NULL, 'k' },
		{ "cli-read-timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	char *end;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'e': o->endpoint = optarg; break;
		case 'p': o->profile = optarg; break;
		case 'r': o->region = optarg; break;
		case 'i': o->id = optarg; break;
		case 'n': o->channel = optarg; break;
		case 'd': o->data = optarg; break;
		case 'f': o->data_file = optarg; break;
		case 'c': o->cursor = optarg; break;
		case 'a': o->ca_bundle = optarg; break;
		case 'k': o->no_verify = 1; break;
		case 'l':
			o->limit = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !*optarg || !o->limit || o->limit > 1000)
				return usage_error("--limit: a number from 1 to 1000, not %s", optarg);
			break;
		case 't':
			o->timeout_ms = (int)strtol(optarg, &end, 10) * 1000;
			if (*end || !*optarg || o->timeout_ms <= 0)
				return usage_error("--cli-read-timeout: seconds, not %s", optarg);
			break;
		case 'h': usage(stdout); exit(0);
		default: return EXIT_USAGE;
		}
	}
	return 0;
}

/* Options may come before and after the command and the ID (GNU getopt
 * moves the operands to the end). */
static int gather(int argc, char **argv, struct opts *o)
{
	int rc = parse_args(argc, argv, o);

	if (rc)
		return rc;
	if (optind < argc)
		o->command = argv[optind++];
	if (o->command && (!strcmp(o->command, "publish") || !strcmp(o->command, "list"))) {
		/* The operand is the channel. */
		if (optind < argc && !o->channel)
			o->channel = argv[optind++];
	} else if (o->command && strcmp(o->command, "broadcast")) {
		if (optind < argc && !o->id)
			o->id = argv[optind++];
		if (optind < argc && !o->channel &&
		    (!strcmp(o->command, "join") || !strcmp(o->command, "leave")))
			o->channel = argv[optind++];
	}
	if (optind < argc && o->command && !strcmp(o->command, "post")) {
		o->more_ids = argv + optind;
		o->n_more = argc - optind;
		optind = argc;
	}
	if (optind < argc)
		return usage_error("unexpected argument: %s", argv[optind]);
	return 0;
}

static int check_opts(const struct opts *o)
{
	static const char *const commands[] = { "post", "get", "delete", "list", "publish",
						"join", "leave", "broadcast" };
	int known = 0, membership;

	if (!o->command)
		return usage_error("%s", "a command is required (post, get, delete, list, "
				   "publish, join, leave, broadcast)");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		known |= !strcmp(o->command, commands[i]);
	if (!known)
		return usage_error("invalid command: %s", o->command);
	if (!o->endpoint)
		return usage_error("%s", "the following arguments are required: --endpoint");
	membership = !strcmp(o->command, "join") || !strcmp(o->command, "leave");
	if (!strcmp(o->command, "publish") && !o->channel)
		return usage_error("the following arguments are required: %s", "--channel");
	if (strcmp(o->command, "list") && strcmp(o->command, "publish") &&
	    strcmp(o->command, "broadcast") && !o->id)
		return usage_error("the following arguments are required: %s", "--connection-id");
	if (membership && !o->channel)
		return usage_error("the following arguments are required: %s", "--channel");
	if (takes_data(o->command) && !o->data == !o->data_file)
		return usage_error("%s", "one of --data and --data-file is required");
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .command = NULL };
	struct creds cr = { .access_key = NULL };
	wsgate_client_t *c = NULL;
	char err[512];
	int code;

	signal(SIGPIPE, SIG_IGN); /* libwsgate's TLS writes: see wsgate_client.h */
	if ((code = gather(argc, argv, &o)) || (code = check_opts(&o)) ||
	    (code = load_creds(&o, &cr)))
		goto out;
	if (wsgate_client_create(&c, o.endpoint, err, sizeof(err))) {
		fprintf(stderr, "\n%s\n", err);
		code = EXIT_USAGE;
		goto out;
	}
	if (wsgate_client_set_credentials(c, cr.access_key, cr.secret, cr.token, cr.region) ||
	    wsgate_client_set_tls(c, o.ca_bundle ? o.ca_bundle : env("AWS_CA_BUNDLE"),
				  !o.no_verify)) {
		code = EXIT_OTHER;
		goto out;
	}
	if (o.timeout_ms)
		wsgate_client_set_timeout(c, o.timeout_ms);
	code = run(c, &o);
out:
	wsgate_client_destroy(c);
	free_creds(&cr);
	return code;
}
