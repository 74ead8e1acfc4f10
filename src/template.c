/* SAM and CloudFormation templates to API files (template.h).
 *
 * Three steps: libyaml's document tree becomes a jansson tree, with the
 * short-form tags (!Ref, !Sub, !GetAtt...) turned into their long form,
 * so that YAML and JSON templates are one case; each resource's
 * Properties are evaluated (intrinsic functions resolved for a stack
 * named "wsgate" in account 123456789012); the ApiGatewayV2 resources of
 * one API are then written as the API file config.c reads. */
#include "template.h"
#include "apiid.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define MAX_DEPTH 64
#define MAX_NODES 200000      /* YAML aliases can multiply a small file */
#define MAX_FILE (16u << 20)
#define ACCOUNT "123456789012"
#define STACK "wsgate"

gw_tmpl_opts_t gw_tmpl_default_opts;

struct tmpl {
	json_t *root;       /* the template */
	json_t *resources;  /* borrowed from root */
	const gw_tmpl_opts_t *o;
	const char *region;
	gw_buf_t *warn, *err;
	int failed;
	size_t budget;      /* nodes converted or evaluated, at most */
	json_t *novalue;    /* AWS::NoValue: the key or element is left out */
};

static void append_vf(gw_buf_t *b, const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	gw_buf_append_str(b, prefix);
	gw_buf_append_str(b, line);
	gw_buf_append_char(b, '\n');
}

static void warnf(struct tmpl *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(struct tmpl *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	append_vf(t->warn, "warning: ", fmt, ap);
	va_end(ap);
}

/* The first error only: later ones are usually its consequences. */
static void errf(struct tmpl *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errf(struct tmpl *t, const char *fmt, ...)
{
	va_list ap;

	if (t->failed++)
		return;
	va_start(ap, fmt);
	append_vf(t->err, "", fmt, ap);
	va_end(ap);
}

static int spend(struct tmpl *t, int depth)
{
	if (depth > MAX_DEPTH) {
		errf(t, "nested deeper than %d levels", MAX_DEPTH);
		return -1;
	}
	if (!t->budget) {
		errf(t, "more than %d values (aliases expanded)", MAX_NODES);
		return -1;
	}
	t->budget--;
	return 0;
}

/* ---- YAML to JSON ---------------------------------------------------- */

static int all_digits(const char *s, size_t n)
{
	size_t i = (n && (s[0] == '-' || s[0] == '+')) ? 1 : 0;

	if (i == n || n > 18)
		return 0;
	for (; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* Plain scalars resolve as YAML 1.2's core schema does for what
 * templates use: null, booleans and integers; everything else is text. */
static json_t *plain_scalar(const char *s, size_t n)
{
	if (!n || (n == 1 && s[0] == '~') || (n == 4 && !memcmp(s, "null", 4)))
		return json_null();
	if ((n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4))))
		return json_true();
	if ((n == 5 && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5))))
		return json_false();
	if (all_digits(s, n) && !(n > 1 && s[0] == '0'))
		return json_integer(strtoll(s, NULL, 10));
	return json_stringn(s, n);
}

static json_t *yaml_to_json(struct tmpl *t, yaml_document_t *doc, yaml_node_t *n, int depth);

/* "!GetAtt A.B" is ["A", "B"]. */
static json_t *getatt_short(json_t *v)
{
	const char *s = json_string_value(v), *dot = s ? strchr(s, '.') : NULL;
	json_t *a;

	if (!dot)
		return json_incref(v);
	a = json_array();
	json_array_append_new(a, json_stringn(s, (size_t)(dot - s)));
	json_array_append_new(a, json_string(dot + 1));
	return a;
}

/* !Ref X is {"Ref": X}, !Condition X {"Condition": X}, !Name X {"Fn::Name": X}. */
static json_t *short_form(struct tmpl *t, const char *tag, json_t *v)
{
	char key[64];
	json_t *o;

	if (!strcmp(tag, "!Ref") || !strcmp(tag, "!Condition"))
		snprintf(key, sizeof(key), "%s", tag + 1);
	else
		snprintf(key, sizeof(key), "Fn::%s", tag + 1);
	if (!strcmp(tag, "!GetAtt")) {
		json_t *a = getatt_short(v);
		json_decref(v);
		v = a;
	}
	o = json_object();
	json_object_set_new(o, key, v);
	return o;
}

static json_t *yaml_scalar(struct tmpl *t, yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	json_t *v;

	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (!n->tag || !strcmp((char *)n->tag, YAML_DEFAULT_SCALAR_TAG) || n->tag[0] == '!'))
		v = plain_scalar(s, len);
	else
		v = json_stringn(s, len);
	if (!v)
		errf(t, "line %lu: a value that is not valid text",
		     (unsigned long)n->start_mark.line + 1);
	return v;
}

static json_t *yaml_seq(struct tmpl *t, yaml_document_t *doc, yaml_node_t *n, int depth)
{
	json_t *a = json_array();

	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
	     i++) {
		json_t *v = yaml_to_json(t, doc, yaml_document_get_node(doc, *i), depth + 1);
		if (!v)
			goto fail;
		json_array_append_new(a, v);
	}
	return a;
fail:
	json_decref(a);
	return NULL;
}

static json_t *yaml_map(struct tmpl *t, yaml_document_t *doc, yaml_node_t *n, int depth)
{
	json_t *o = json_object();

	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		json_t *v;

		if (!k || k->type != YAML_SCALAR_NODE || memchr(k->data.scalar.value, 0,
								 k->data.scalar.length)) {
			errf(t, "line %lu: expected a text key", (unsigned long)n->start_mark.line + 1);
			goto fail;
		}
		v = yaml_to_json(t, doc, yaml_document_get_node(doc, p->value), depth + 1);
		if (!v)
			goto fail;
		if (json_object_set_new(o, (const char *)k->data.scalar.value, v)) {
			errf(t, "line %lu: a key that is not valid text",
			     (unsigned long)k->start_mark.line + 1);
			goto fail;
		}
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *yaml_to_json(struct tmpl *t, yaml_document_t *doc, yaml_node_t *n, int depth)
{
	json_t *v = NULL;

	if (!n)
		return json_null();
	if (spend(t, depth))
		return NULL;
	switch (n->type) {
	case YAML_SCALAR_NODE: v = yaml_scalar(t, n); break;
	case YAML_SEQUENCE_NODE: v = yaml_seq(t, doc, n, depth); break;
	case YAML_MAPPING_NODE: v = yaml_map(t, doc, n, depth); break;
	default: return json_null();
	}
	if (v && n->tag && n->tag[0] == '!' && n->tag[1] && strlen((char *)n->tag) < 40)
		v = short_form(t, (const char *)n->tag, v);
	return v;
}

static json_t *parse(struct tmpl *t, const char *data, size_t len)
{
	yaml_parser_t p;
	yaml_document_t doc;
	json_t *root = NULL;

	if (!yaml_parser_initialize(&p))
		abort();
	yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
	if (!yaml_parser_load(&p, &doc)) {
		errf(t, "line %lu, column %lu: invalid YAML: %s",
		     (unsigned long)p.problem_mark.line + 1,
		     (unsigned long)p.problem_mark.column + 1,
		     p.problem ? p.problem : "syntax error");
		yaml_parser_delete(&p);
		return NULL;
	}
	root = yaml_to_json(t, &doc, yaml_document_get_root_node(&doc), 0);
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	if (root && !json_is_object(root)) {
		errf(t, "expected a template (a mapping with Resources)");
		json_decref(root);
		root = NULL;
	}
	return root;
}

/* ---- Intrinsic functions --------------------------------------------- */

static json_t *eval(struct tmpl *t, json_t *v, int depth);

static const char *res_type(struct tmpl *t, const char *id)
{
	json_t *r = json_object_get(t->resources, id);

	return json_string_value(json_object_get(r, "Type"));
}

static int is_function_type(const char *type)
{
	return type && (!strcmp(type, "AWS::Serverless::Function") ||
			!strcmp(type, "AWS::Lambda::Function"));
}

static int is_table_type(const char *type)
{
	return type && (!strcmp(type, "AWS::DynamoDB::Table") ||
			!strcmp(type, "AWS::Serverless::SimpleTable"));
}

static json_t *textf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *textf(const char *fmt, ...)
{
	char s[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s, sizeof(s), fmt, ap);
	va_end(ap);
	return json_string(s);
}

static int is_api(struct tmpl *t, const char *id)
{
	const char *type = res_type(t, id);

	return type && !strcmp(type, "AWS::ApiGatewayV2::Api");
}

/* An API's Ref (and GetAtt ApiId) is its ID: the apiId the imported API
 * file gets, derived from its Name (the logical ID without one), so that
 * a handler's environment set from it equals requestContext.apiId. */
static json_t *api_id(struct tmpl *t, const char *id, int depth)
{
	json_t *n = json_object_get(json_object_get(json_object_get(t->resources, id),
						    "Properties"), "Name");
	json_t *v = n ? eval(t, n, depth + 1) : NULL;
	char out[11];

	gw_apiid_derive(json_is_string(v) ? json_string_value(v) : id, out);
	json_decref(v);
	return json_string(out);
}

static json_t *ref(struct tmpl *t, const char *name, int depth)
{
	json_t *p = json_object_get(json_object_get(t->root, "Parameters"), name);

	if (!strcmp(name, "AWS::Region"))
		return json_string(t->region);
	if (!strcmp(name, "AWS::AccountId"))
		return json_string(ACCOUNT);
	if (!strcmp(name, "AWS::StackName"))
		return json_string(STACK);
	if (!strcmp(name, "AWS::Partition"))
		return json_string("aws");
	if (!strcmp(name, "AWS::URLSuffix"))
		return json_string("amazonaws.com");
	if (!strcmp(name, "AWS::StackId"))
		return textf("arn:aws:cloudformation:%s:" ACCOUNT ":stack/" STACK
			     "/00000000-0000-0000-0000-000000000000", t->region);
	if (!strcmp(name, "AWS::NoValue"))
		return json_incref(t->novalue);
	if (!strcmp(name, "AWS::NotificationARNs"))
		return json_array();
	if (p) {
		json_t *d = json_object_get(p, "Default");
		if (d)
			return eval(t, d, depth + 1);
		warnf(t, "parameter %s has no Default: \"\" used", name);
		return json_string("");
	}
	/* A table's Ref is its name, which handlers get in their
	 * environment and the runner creates. */
	if (is_table_type(res_type(t, name))) {
		json_t *tn = json_object_get(json_object_get(json_object_get(t->resources, name),
							     "Properties"), "TableName");
		return tn ? eval(t, tn, depth + 1) : json_string(name);
	}
	if (is_api(t, name))
		return api_id(t, name, depth);
	/* Other resources' Ref is their physical ID; the logical ID stands for it. */
	if (!json_object_get(t->resources, name))
		warnf(t, "Ref %s: no such parameter or resource", name);
	return json_string(name);
}

static json_t *getatt(struct tmpl *t, const char *id, const char *attr, int depth)
{
	const char *type = res_type(t, id);

	if (!type) {
		warnf(t, "GetAtt %s.%s: no such resource", id, attr);
		return textf("%s.%s", id, attr);
	}
	if (is_function_type(type) && !strcmp(attr, "Arn"))
		return textf("arn:aws:lambda:%s:" ACCOUNT ":function:%s", t->region, id);
	if (is_api(t, id) && !strcmp(attr, "ApiId"))
		return api_id(t, id, depth);
	if (is_api(t, id) && !strcmp(attr, "ApiEndpoint")) {
		json_t *aid = api_id(t, id, depth);
		json_t *r = textf("wss://%s.execute-api.%s.amazonaws.com", json_string_value(aid),
				  t->region);
		json_decref(aid);
		return r;
	}
	if (!strcmp(attr, "Arn"))
		return textf("arn:aws:local:%s:" ACCOUNT ":%s", t->region, id);
	return textf("%s.%s", id, attr);
}

/* Numbers and booleans join and substitute as their text. */
static int append_text(struct tmpl *t, gw_buf_t *b, json_t *v, const char *fn)
{
	char num[32];

	if (json_is_string(v))
		gw_buf_append(b, json_string_value(v), json_string_length(v));
	else if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		gw_buf_append_str(b, num);
	} else if (json_is_real(v)) {
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		gw_buf_append_str(b, num);
	} else if (json_is_boolean(v))
		gw_buf_append_str(b, json_is_true(v) ? "true" : "false");
	else {
		errf(t, "%s: expected text, found %s", fn,
		     json_is_object(v) ? "an object" : json_is_array(v) ? "a list" : "null");
		return -1;
	}
	return 0;
}

static json_t *buf_text(gw_buf_t *b)
{
	json_t *s = json_stringn(b->data ? b->data : "", b->len);

	gw_buf_dispose(b);
	return s ? s : json_string("");
}

static json_t *sub_var(struct tmpl *t, const char *name, json_t *vars, int depth)
{
	json_t *v = json_object_get(vars, name);
	const char *dot;

	if (v)
		return eval(t, v, depth + 1);
	dot = strchr(name, '.');
	if (dot && strncmp(name, "AWS::", 5)) {
		char id[256];
		snprintf(id, sizeof(id), "%.*s", (int)(dot - name), name);
		return getatt(t, id, dot + 1, depth);
	}
	return ref(t, name, depth);
}

static json_t *fn_sub(struct tmpl *t, json_t *arg, int depth)
{
	json_t *vars = NULL;
	const char *s, *p;
	gw_buf_t b;

	if (json_is_array(arg) && json_array_size(arg) == 2) {
		vars = json_array_get(arg, 1);
		arg = json_array_get(arg, 0);
	}
	if (!(s = json_string_value(arg)) || (vars && !json_is_object(vars))) {
		errf(t, "Fn::Sub: expected a string, or [string, {variables}]");
		return NULL;
	}
	gw_buf_init(&b);
	while ((p = strstr(s, "${"))) {
		const char *end = strchr(p + 2, '}');
		char name[256];
		json_t *v;
		int rc;

		if (!end)
			break;
		gw_buf_append(&b, s, (size_t)(p - s));
		if (p[2] == '!') { /* ${!Literal} */
			gw_buf_append_str(&b, "${");
			gw_buf_append(&b, p + 3, (size_t)(end + 1 - (p + 3)));
			s = end + 1;
			continue;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(end - p - 2), p + 2);
		if (!(v = sub_var(t, name, vars, depth)))
			goto fail;
		rc = v == t->novalue ? 0 : append_text(t, &b, v, "Fn::Sub");
		json_decref(v);
		if (rc)
			goto fail;
		s = end + 1;
	}
	gw_buf_append_str(&b, s);
	return buf_text(&b);
fail:
	gw_buf_dispose(&b);
	return NULL;
}

static json_t *fn_join(struct tmpl *t, json_t *arg, int depth)
{
	json_t *list, *v;
	const char *delim;
	size_t i;
	gw_buf_t b;

	if (!json_is_array(arg) || json_array_size(arg) != 2 ||
	    !(delim = json_string_value(json_array_get(arg, 0)))) {
		errf(t, "Fn::Join: expected [delimiter, [values]]");
		return NULL;
	}
	if (!(list = eval(t, json_array_get(arg, 1), depth + 1)))
		return NULL;
	if (!json_is_array(list)) {
		json_decref(list);
		errf(t, "Fn::Join: expected a list of values to join");
		return NULL;
	}
	gw_buf_init(&b);
	json_array_foreach(list, i, v) {
		if (i)
			gw_buf_append_str(&b, delim);
		if (append_text(t, &b, v, "Fn::Join")) {
			gw_buf_dispose(&b);
			json_decref(list);
			return NULL;
		}
	}
	json_decref(list);
	return buf_text(&b);
}

static json_t *fn_select(struct tmpl *t, json_t *arg, int depth)
{
	json_t *a = eval(t, arg, depth + 1), *idx, *r = NULL;
	long long i = -1;

	if (!a)
		return NULL;
	idx = json_array_get(a, 0);
	if (json_is_integer(idx))
		i = json_integer_value(idx);
	else if (json_is_string(idx) && all_digits(json_string_value(idx), json_string_length(idx)))
		i = strtoll(json_string_value(idx), NULL, 10);
	if (json_array_size(a) == 2 && json_is_array(json_array_get(a, 1)) && i >= 0 &&
	    (size_t)i < json_array_size(json_array_get(a, 1)))
		r = json_incref(json_array_get(json_array_get(a, 1), (size_t)i));
	else
		errf(t, "Fn::Select: expected [index, [values]] with the index in range");
	json_decref(a);
	return r;
}

static json_t *fn_split(struct tmpl *t, json_t *arg, int depth)
{
	json_t *a = eval(t, arg, depth + 1), *out;
	const char *d, *s, *p;

	if (!a)
		return NULL;
	d = json_string_value(json_array_get(a, 0));
	s = json_string_value(json_array_get(a, 1));
	if (json_array_size(a) != 2 || !d || !*d || !s) {
		errf(t, "Fn::Split: expected [delimiter, string]");
		json_decref(a);
		return NULL;
	}
	out = json_array();
	while ((p = strstr(s, d))) {
		json_array_append_new(out, json_stringn(s, (size_t)(p - s)));
		s = p + strlen(d);
	}
	json_array_append_new(out, json_string(s));
	json_decref(a);
	return out;
}

static json_t *fn_find_in_map(struct tmpl *t, json_t *arg, int depth)
{
	json_t *a = eval(t, arg, depth + 1), *v = NULL;

	if (!a)
		return NULL;
	if (json_array_size(a) == 3) {
		v = json_object_get(json_object_get(t->root, "Mappings"),
				    json_string_value(json_array_get(a, 0)) ?: "");
		v = json_object_get(v, json_string_value(json_array_get(a, 1)) ?: "");
		v = json_object_get(v, json_string_value(json_array_get(a, 2)) ?: "");
	}
	json_decref(a);
	if (!v) {
		errf(t, "Fn::FindInMap: no such entry in Mappings");
		return NULL;
	}
	return eval(t, v, depth + 1);
}

static json_t *condition(struct tmpl *t, json_t *name, int depth)
{
	json_t *c = json_object_get(json_object_get(t->root, "Conditions"),
				    json_string_value(name) ?: "");

	if (!c) {
		errf(t, "Condition: no such condition in Conditions");
		return NULL;
	}
	return eval(t, c, depth + 1);
}

/* Fn::Equals, Fn::Not, Fn::And, Fn::Or: true or false. */
static json_t *fn_logic(struct tmpl *t, const char *fn, json_t *arg, int depth)
{
	json_t *a = eval(t, arg, depth + 1), *v;
	size_t i;
	int r;

	if (!a)
		return NULL;
	if (!json_is_array(a) || !json_array_size(a)) {
		json_decref(a);
		errf(t, "%s: expected a list", fn);
		return NULL;
	}
	if (!strcmp(fn, "Fn::Equals"))
		r = json_array_size(a) == 2 &&
		    json_equal(json_array_get(a, 0), json_array_get(a, 1));
	else if (!strcmp(fn, "Fn::Not"))
		r = !json_is_true(json_array_get(a, 0));
	else {
		int and = !strcmp(fn, "Fn::And");
		r = and;
		json_array_foreach(a, i, v)
			r = and ? (r && json_is_true(v)) : (r || json_is_true(v));
	}
	json_decref(a);
	return json_boolean(r);
}

static json_t *fn_if(struct tmpl *t, json_t *arg, int depth)
{
	json_t *c;
	int yes;

	if (!json_is_array(arg) || json_array_size(arg) != 3) {
		errf(t, "Fn::If: expected [condition, value if true, value if false]");
		return NULL;
	}
	if (!(c = condition(t, json_array_get(arg, 0), depth)))
		return NULL;
	yes = json_is_true(c);
	json_decref(c);
	return eval(t, json_array_get(arg, yes ? 1 : 2), depth + 1);
}

static json_t *fn_base64(struct tmpl *t, json_t *arg, int depth)
{
	json_t *v = eval(t, arg, depth + 1);
	gw_buf_t b, out;

	if (!v)
		return NULL;
	gw_buf_init(&b);
	if (append_text(t, &b, v, "Fn::Base64")) {
		gw_buf_dispose(&b);
		json_decref(v);
		return NULL;
	}
	json_decref(v);
	gw_buf_init(&out);
	gw_buf_append_base64(&out, b.data ? b.data : "", b.len);
	gw_buf_dispose(&b);
	return buf_text(&out);
}

static json_t *intrinsic(struct tmpl *t, const char *fn, json_t *arg, int depth)
{
	if (!strcmp(fn, "Ref")) {
		if (!json_is_string(arg)) {
			errf(t, "Ref: expected the name of a parameter or resource");
			return NULL;
		}
		return ref(t, json_string_value(arg), depth);
	}
	if (!strcmp(fn, "Fn::GetAtt")) {
		const char *id = json_string_value(json_array_get(arg, 0));
		json_t *attr = json_array_size(arg) == 2 ? eval(t, json_array_get(arg, 1), depth + 1)
							 : NULL, *r = NULL;
		if (id && json_is_string(attr))
			r = getatt(t, id, json_string_value(attr), depth);
		else
			errf(t, "Fn::GetAtt: expected [resource, attribute] or \"resource.attribute\"");
		json_decref(attr);
		return r;
	}
	if (!strcmp(fn, "Fn::Sub"))
		return fn_sub(t, arg, depth);
	if (!strcmp(fn, "Fn::Join"))
		return fn_join(t, arg, depth);
	if (!strcmp(fn, "Fn::Select"))
		return fn_select(t, arg, depth);
	if (!strcmp(fn, "Fn::Split"))
		return fn_split(t, arg, depth);
	if (!strcmp(fn, "Fn::FindInMap"))
		return fn_find_in_map(t, arg, depth);
	if (!strcmp(fn, "Fn::If"))
		return fn_if(t, arg, depth);
	if (!strcmp(fn, "Condition"))
		return condition(t, arg, depth);
	if (!strcmp(fn, "Fn::Equals") || !strcmp(fn, "Fn::Not") || !strcmp(fn, "Fn::And") ||
	    !strcmp(fn, "Fn::Or"))
		return fn_logic(t, fn, arg, depth);
	if (!strcmp(fn, "Fn::Base64"))
		return fn_base64(t, arg, depth);
	warnf(t, "%s is not supported here: \"\" used", fn);
	return json_string("");
}

static json_t *eval(struct tmpl *t, json_t *v, int depth)
{
	json_t *out, *x, *r;
	const char *k;
	size_t i;

	if (spend(t, depth))
		return NULL;
	if (json_is_object(v) && json_object_size(v) == 1) {
		void *it = json_object_iter(v);
		k = json_object_iter_key(it);
		if (!strcmp(k, "Ref") || !strncmp(k, "Fn::", 4) || !strcmp(k, "Condition"))
			return intrinsic(t, k, json_object_iter_value(it), depth);
	}
	if (json_is_object(v)) {
		out = json_object();
		json_object_foreach(v, k, x) {
			if (!(r = eval(t, x, depth + 1)))
				goto fail;
			if (r == t->novalue)
				json_decref(r);
			else
				json_object_set_new(out, k, r);
		}
		return out;
	}
	if (json_is_array(v)) {
		out = json_array();
		json_array_foreach(v, i, x) {
			if (!(r = eval(t, x, depth + 1)))
				goto fail;
			if (r == t->novalue)
				json_decref(r);
			else
				json_array_append_new(out, r);
		}
		return out;
	}
	return json_incref(v);
fail:
	json_decref(out);
	return NULL;
}

/* ---- Resources ------------------------------------------------------- */

/* A resource's Properties, evaluated (a new reference; {} when absent). */
static json_t *props(struct tmpl *t, const char *id)
{
	json_t *p = json_object_get(json_object_get(t->resources, id), "Properties");

	if (!p)
		return json_object();
	p = eval(t, p, 1);
	if (p && !json_is_object(p)) {
		errf(t, "%s: Properties: expected a mapping", id);
		json_decref(p);
		return NULL;
	}
	return p;
}

static int listed(const char *k, const char *const *known)
{
	for (; *known; known++)
		if (!strcmp(k, *known))
			return 1;
	return 0;
}

static void check_props(struct tmpl *t, const char *id, const char *what, json_t *p,
			const char *const *known)
{
	const char *k;
	json_t *v;

	json_object_foreach(p, k, v)
		if (!listed(k, known))
			warnf(t, "%s (%s): property %s is not supported: ignored", id, what, k);
}

/* Text of a property, or NULL (numbers are not text here). */
static const char *str(json_t *p, const char *key)
{
	return json_string_value(json_object_get(p, key));
}

static json_t *as_number(json_t *v)
{
	if (json_is_string(v) && all_digits(json_string_value(v), json_string_length(v)))
		return json_integer(strtoll(json_string_value(v), NULL, 10));
	return json_is_number(v) ? json_incref(v) : NULL;
}

/* The logical ID (or FunctionName) after ":function:" in a Lambda ARN or
 * an apigateway "...functions/ARN/invocations" URI. */
static const char *function_of_uri(struct tmpl *t, const char *uri, char *name, size_t size)
{
	const char *p = uri ? strstr(uri, ":function:") : NULL, *k;
	json_t *r;

	if (!p)
		return NULL;
	p += strlen(":function:");
	snprintf(name, size, "%.*s", (int)strcspn(p, ":/"), p);
	if (is_function_type(res_type(t, name)))
		return name;
	json_object_foreach(t->resources, k, r) {
		json_t *fn = json_object_get(json_object_get(r, "Properties"), "FunctionName");
		if (is_function_type(res_type(t, k)) && json_is_string(fn) &&
		    !strcmp(json_string_value(fn), name)) {
			snprintf(name, size, "%s", k);
			return name;
		}
	}
	warnf(t, "Lambda function %s is not in this template: served by the runner as %s",
	      name, name);
	return name;
}

static json_t *runner_uri(struct tmpl *t, const char *fn)
{
	return textf("%s%s", t->o->runner_url ? t->o->runner_url : GW_TMPL_DEFAULT_RUNNER, fn);
}

/* The ID in "integrations/ID", as Route's Target writes it. */
static const char *target_id(const char *target)
{
	if (!target || strncmp(target, "integrations/", 13))
		return NULL;
	return target + 13;
}

struct api_out {
	const char *id;     /* the API's logical ID */
	char api_id[11];    /* what its Ref stands for (api_id) */
	int http;           /* ProtocolType HTTP */
	json_t *api;        /* the API file */
	json_t *route_ids;  /* Route logical ID -> route key */
};

/* The resource belongs to the API imported (ApiId its Ref, or its logical
 * ID); others were warned about. "Ref! Api" (or "!Ref Api" quoted), a
 * short form misspelt into plain text, is read as the Ref it meant, with a
 * warning: a published template has it (serverless-patterns'
 * apigw-websocket-mapping-template-authorizer), and dropping the resource
 * would drop its route, and with $connect its authorizer. */
static int same_api(struct tmpl *t, struct api_out *a, const char *id, json_t *p)
{
	const char *api = str(p, "ApiId");

	if (!api)
		return 0;
	if (!strcmp(api, a->api_id) || !strcmp(api, a->id))
		return 1;
	if ((!strncmp(api, "Ref! ", 5) || !strncmp(api, "!Ref ", 5)) && !strcmp(api + 5, a->id)) {
		warnf(t, "%s: ApiId \"%s\" is text, not a Ref: read as !Ref %s", id, api, a->id);
		return 1;
	}
	return 0;
}

static void map_api(struct tmpl *t, struct api_out *a, json_t *p)
{
	static const char *const known[] = { "Name", "ProtocolType", "RouteSelectionExpression",
		"Description", "CorsConfiguration", "ApiKeySelectionExpression", "Tags",
		"DisableExecuteApiEndpoint", "Version", NULL };
	static const char *const cors_keys[][2] = { { "AllowOrigins", "allowOrigins" },
		{ "AllowMethods", "allowMethods" }, { "AllowHeaders", "allowHeaders" },
		{ "ExposeHeaders", "exposeHeaders" }, { "MaxAge", "maxAge" },
		{ "AllowCredentials", "allowCredentials" } };
	const char *name = str(p, "Name"), *rse = str(p, "RouteSelectionExpression");
	const char *aks = str(p, "ApiKeySelectionExpression");
	json_t *cors = json_object_get(p, "CorsConfiguration");

	check_props(t, a->id, "AWS::ApiGatewayV2::Api", p, known);
	json_object_set_new(a->api, "name", json_string(name ? name : a->id));
	if (rse && !a->http)
		json_object_set_new(a->api, "routeSelectionExpression", json_string(rse));
	if (aks && strcmp(aks, "$request.header.x-api-key"))
		warnf(t, "%s: ApiKeySelectionExpression %s: only $request.header.x-api-key is "
		      "supported", a->id, aks);
	if (json_is_object(cors)) {
		json_t *c = json_object();
		for (size_t i = 0; i < sizeof(cors_keys) / sizeof(cors_keys[0]); i++) {
			json_t *v = json_object_get(cors, cors_keys[i][0]);
			if (v)
				json_object_set(c, cors_keys[i][1], v);
		}
		json_object_set_new(a->api, "cors", c);
	}
}

static void map_integration(struct tmpl *t, struct api_out *a, const char *id, json_t *p)
{
	static const char *const known[] = { "ApiId", "IntegrationType", "IntegrationUri",
		"TimeoutInMillis", "RequestParameters", "Description", "IntegrationMethod",
		"PayloadFormatVersion", "ConnectionType", NULL };
	const char *type = str(p, "IntegrationType"), *uri = str(p, "IntegrationUri");
	const char *conn = str(p, "ConnectionType");
	json_t *out = json_object(), *v;
	char fn[256];

	check_props(t, id, "AWS::ApiGatewayV2::Integration", p, known);
	if (conn && strcmp(conn, "INTERNET"))
		warnf(t, "%s: ConnectionType %s: called directly", id, conn);
	if (!type)
		type = "";
	if (!strcmp(type, "AWS") || !strcmp(type, "HTTP"))
		warnf(t, "%s: IntegrationType %s: request and response templates are not "
		      "applied; proxied as %s_PROXY", id, type, type);
	if (!strcmp(type, "AWS_PROXY") || !strcmp(type, "AWS")) {
		json_object_set_new(out, "type", json_string("AWS_PROXY"));
		if (function_of_uri(t, uri, fn, sizeof(fn)))
			json_object_set_new(out, "uri", runner_uri(t, fn));
		else if (uri && !strncmp(uri, "http", 4))
			json_object_set_new(out, "uri", json_string(uri));
		else {
			warnf(t, "%s: IntegrationUri %s is not a Lambda function: not imported", id,
			      uri ? uri : "(none)");
			goto skip;
		}
	} else if (!strcmp(type, "HTTP_PROXY") || !strcmp(type, "HTTP")) {
		json_object_set_new(out, "type", json_string("HTTP_PROXY"));
		json_object_set_new(out, "uri", json_string(uri ? uri : ""));
		if (str(p, "IntegrationMethod") && strcmp(str(p, "IntegrationMethod"), "ANY"))
			json_object_set_new(out, "method", json_string(str(p, "IntegrationMethod")));
	} else if (!strcmp(type, "MOCK")) {
		json_object_set_new(out, "type", json_string("MOCK"));
		warnf(t, "%s: MOCK answers 200 with an empty body (templates are not applied)", id);
	} else {
		warnf(t, "%s: IntegrationType \"%s\" is not supported: not imported", id, type);
		goto skip;
	}
	if ((v = as_number(json_object_get(p, "TimeoutInMillis"))))
		json_object_set_new(out, "timeoutMs", v);
	if (json_is_object(v = json_object_get(p, "RequestParameters")) && json_object_size(v))
		json_object_set(out, "requestParameters", v);
	json_object_set_new(json_object_get(a->api, "integrations"), id, out);
	return;
skip:
	json_decref(out);
}

/* HTTP APIs write identity sources "$request.header.X"; the gateway
 * reads WebSocket's "route.request.header.X". */
static json_t *identity_sources(json_t *v)
{
	json_t *out = json_array(), *x;
	size_t i;

	if (json_is_string(v)) {
		json_t *one = json_array();
		json_array_append(one, v);
		v = one;
	} else
		json_incref(v);
	json_array_foreach(v, i, x) {
		const char *s = json_string_value(x);
		if (!s)
			continue;
		if (!strncmp(s, "$request.", 9))
			json_array_append_new(out, textf("route.request.%s", s + 9));
		else if (!strncmp(s, "$stageVariables.", 16))
			json_array_append_new(out, json_string(s + 1));
		else
			json_array_append(out, x);
	}
	json_decref(v);
	return out;
}

static void map_authorizer(struct tmpl *t, struct api_out *a, const char *id, json_t *p)
{
	static const char *const known[] = { "ApiId", "AuthorizerType", "AuthorizerUri",
		"IdentitySource", "Name", "AuthorizerResultTtlInSeconds",
		"AuthorizerPayloadFormatVersion", "EnableSimpleResponses", NULL };
	const char *type = str(p, "AuthorizerType");
	json_t *az, *integ, *v;
	char fn[256];

	check_props(t, id, "AWS::ApiGatewayV2::Authorizer", p, known);
	if (!type || strcmp(type, "REQUEST")) {
		warnf(t, "%s: AuthorizerType %s: only REQUEST (Lambda) authorizers are imported "
		      "(a JWT authorizer needs jwtConfiguration.jwksFile or jwksUri, which the "
		      "template does not hold: add it to the API file)",
		      id, type ? type : "(none)");
		return;
	}
	if (!function_of_uri(t, str(p, "AuthorizerUri"), fn, sizeof(fn))) {
		warnf(t, "%s: AuthorizerUri is not a Lambda function: not imported", id);
		return;
	}
	integ = json_object();
	json_object_set_new(integ, "type", json_string("AWS_PROXY"));
	json_object_set_new(integ, "uri", runner_uri(t, fn));
	json_object_set_new(json_object_get(a->api, "integrations"), id, integ);
	az = json_object();
	json_object_set_new(az, "type", json_string("REQUEST"));
	json_object_set_new(az, "integration", json_string(id));
	if ((v = json_object_get(p, "IdentitySource")))
		json_object_set_new(az, "identitySource", identity_sources(v));
	if ((v = as_number(json_object_get(p, "AuthorizerResultTtlInSeconds"))))
		json_object_set_new(az, "authorizerResultTtlInSeconds", v);
	json_object_set_new(json_object_get(a->api, "authorizers"), id, az);
}

static void map_route(struct tmpl *t, struct api_out *a, const char *id, json_t *p)
{
	static const char *const known[] = { "ApiId", "RouteKey", "Target", "AuthorizationType",
		"AuthorizerId", "ApiKeyRequired", "RouteResponseSelectionExpression",
		"OperationName", NULL };
	const char *key = str(p, "RouteKey"), *integ = target_id(str(p, "Target"));
	const char *auth = str(p, "AuthorizationType"), *azid = str(p, "AuthorizerId");
	json_t *r;

	check_props(t, id, "AWS::ApiGatewayV2::Route", p, known);
	if (!key) {
		warnf(t, "%s: no RouteKey: not imported", id);
		return;
	}
	if (!integ || !json_object_get(json_object_get(a->api, "integrations"), integ)) {
		warnf(t, "%s (%s): Target %s is not an imported integration: route not imported%s",
		      id, key, str(p, "Target") ? str(p, "Target") : "(none)",
		      !strcmp(key, "$connect") && auth && strcmp(auth, "NONE")
			      ? ", and with it its authorizer: connections are not authorized"
			      : "");
		return;
	}
	if (a->http && !strcmp(key, "$default"))
		key = "ANY /{proxy+}";
	r = json_object();
	json_object_set_new(r, "integration", json_string(integ));
	if (auth && strcmp(auth, "NONE")) {
		if (strcmp(key, "$connect"))
			warnf(t, "%s (%s): AuthorizationType %s: only $connect takes an authorizer: "
			      "ignored", id, key, auth);
		else if (azid && json_object_get(json_object_get(a->api, "authorizers"), azid))
			json_object_set_new(r, "authorizer", json_string(azid));
		else
			warnf(t, "%s (%s): AuthorizationType %s: authorizer %s not imported: the "
			      "route is open", id, key, auth, azid ? azid : "(none)");
	}
	if (json_is_true(json_object_get(p, "ApiKeyRequired")))
		warnf(t, "%s (%s): ApiKeyRequired: API keys are not in the template: add "
		      "apiKeys and apiKeyRequired to the API file", id, key);
	json_object_set_new(json_object_get(a->api, "routes"), key, r);
	json_object_set_new(a->route_ids, id, json_string(key));
}

static void map_route_response(struct tmpl *t, struct api_out *a, const char *id, json_t *p)
{
	static const char *const known[] = { "ApiId", "RouteId", "RouteResponseKey",
		"ModelSelectionExpression", "ResponseModels", "ResponseParameters", NULL };
	const char *key = json_string_value(json_object_get(a->route_ids, str(p, "RouteId") ?: ""));
	json_t *r = key ? json_object_get(json_object_get(a->api, "routes"), key) : NULL;

	check_props(t, id, "AWS::ApiGatewayV2::RouteResponse", p, known);
	if (!r) {
		warnf(t, "%s: RouteId is not an imported route: ignored", id);
		return;
	}
	json_object_set_new(r, "routeResponse", json_true());
}

static json_t *throttling(struct tmpl *t, const char *id, json_t *s)
{
	static const char *const known[] = { "ThrottlingBurstLimit", "ThrottlingRateLimit", NULL };
	json_t *burst = as_number(json_object_get(s, "ThrottlingBurstLimit"));
	json_t *rate = as_number(json_object_get(s, "ThrottlingRateLimit"));
	json_t *out = NULL;

	check_props(t, id, "route settings", s, known);
	if (burst && rate) {
		out = json_object();
		json_object_set(out, "rateLimit", rate);
		json_object_set(out, "burstLimit", burst);
	} else if (burst || rate)
		warnf(t, "%s: throttling needs both ThrottlingBurstLimit and ThrottlingRateLimit: "
		      "not throttled", id);
	json_decref(burst);
	json_decref(rate);
	return out;
}

static int stage_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > 128)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static void map_stage(struct tmpl *t, struct api_out *a, const char *id, json_t *p)
{
	static const char *const known[] = { "ApiId", "StageName", "StageVariables",
		"DefaultRouteSettings", "RouteSettings", "AutoDeploy", "DeploymentId",
		"Description", "Tags", NULL };
	const char *name = str(p, "StageName"), *k;
	json_t *v, *th, *routes = json_object_get(a->api, "routes");

	check_props(t, id, "AWS::ApiGatewayV2::Stage", p, known);
	if (json_object_get(a->api, "stage") || json_object_get(a->api, "stageVariables")) {
		warnf(t, "%s: only the first stage of %s is served: ignored", id, a->id);
		return;
	}
	if (stage_name_ok(name))
		json_object_set_new(a->api, "stage", json_string(name));
	else
		warnf(t, "%s: StageName %s: the gateway's stage names are [A-Za-z0-9_-]: "
		      "\"dev\" used", id, name ? name : "(none)");
	if (json_is_object(v = json_object_get(p, "StageVariables"))) {
		json_t *vars = json_object(), *x;
		json_object_foreach(v, k, x) {
			gw_buf_t b;
			gw_buf_init(&b);
			if (append_text(t, &b, x, "StageVariables")) {
				gw_buf_dispose(&b);
				continue;
			}
			json_object_set_new(vars, k, buf_text(&b));
		}
		json_object_set_new(a->api, "stageVariables", vars);
	}
	if (json_is_object(v = json_object_get(p, "DefaultRouteSettings")) &&
	    (th = throttling(t, id, v)))
		json_object_set_new(a->api, "throttling", th);
	json_object_foreach(json_object_get(p, "RouteSettings"), k, v) {
		json_t *r = json_object_get(routes, k);
		if (!r) {
			warnf(t, "%s: RouteSettings for %s: no such route: ignored", id, k);
			continue;
		}
		if ((th = throttling(t, id, v)))
			json_object_set_new(r, "throttling", th);
	}
}

typedef void (*mapper_fn)(struct tmpl *, struct api_out *, const char *, json_t *);

/* Maps every resource of one type that belongs to the API, in template order. */
static void map_each(struct tmpl *t, struct api_out *a, const char *type, mapper_fn fn)
{
	const char *id;
	json_t *r, *p;

	json_object_foreach(t->resources, id, r) {
		const char *rt = res_type(t, id);
		if (!rt || strcmp(rt, type) || t->failed)
			continue;
		if (!(p = props(t, id)))
			return;
		if (same_api(t, a, id, p))
			fn(t, a, id, p);
		else
			warnf(t, "%s (%s): belongs to API %s, not to %s: not imported", id, type,
			      str(p, "ApiId") ? str(p, "ApiId") : "(none)", a->id);
		json_decref(p);
	}
}

/* The template's other resources: nothing of them is served. */
static void warn_unmapped(struct tmpl *t, const char *api)
{
	static const char *const mapped[] = { "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Route",
		"AWS::ApiGatewayV2::Integration", "AWS::ApiGatewayV2::Stage",
		"AWS::ApiGatewayV2::Authorizer", "AWS::ApiGatewayV2::RouteResponse",
		"AWS::Serverless::Function", "AWS::Lambda::Function", NULL };
	const char *id, *type;
	json_t *r;

	json_object_foreach(t->resources, id, r) {
		type = res_type(t, id);
		if (!type)
			warnf(t, "%s: no Type: ignored", id);
		else if (!strcmp(type, "AWS::ApiGatewayV2::Api") && strcmp(id, api))
			warnf(t, "%s (%s): another API: import it with --api %s", id, type, id);
		else if (is_table_type(type))
			warnf(t, "%s (%s): not served by the gateway (clients/lambda-runner creates "
			      "it in a local DynamoDB)", id, type);
		else if (!listed(type, mapped))
			warnf(t, "%s (%s): not mapped (nothing of it is served locally)", id, type);
	}
}

static const char *pick_api(struct tmpl *t)
{
	const char *id, *found = NULL;
	json_t *r;
	size_t n = 0;

	if (t->o->api) {
		const char *type = res_type(t, t->o->api);
		if (!type || strcmp(type, "AWS::ApiGatewayV2::Api")) {
			errf(t, "--api %s: no AWS::ApiGatewayV2::Api of that logical ID", t->o->api);
			return NULL;
		}
		return t->o->api;
	}
	json_object_foreach(t->resources, id, r) {
		const char *type = res_type(t, id);
		if (type && !strcmp(type, "AWS::ApiGatewayV2::Api")) {
			found = found ? found : id;
			n++;
		}
	}
	if (!n)
		errf(t, "no AWS::ApiGatewayV2::Api resource (AWS::Serverless::Api and function "
		     "Events are not imported)");
	else if (n > 1)
		errf(t, "%zu AWS::ApiGatewayV2::Api resources: choose one with --api (%s...)", n,
		     found);
	return n == 1 ? found : NULL;
}

static int setup(struct tmpl *t, const char *data, size_t len, const gw_tmpl_opts_t *o,
		 gw_buf_t *warn, gw_buf_t *err)
{
	static const char *const top[] = { "AWSTemplateFormatVersion", "Transform", "Description",
		"Parameters", "Mappings", "Conditions", "Resources", "Outputs", "Globals",
		"Metadata", NULL };
	const char *k;
	json_t *v;

	memset(t, 0, sizeof(*t));
	t->o = o;
	t->region = o->region ? o->region : "us-east-1";
	t->warn = warn;
	t->err = err;
	t->budget = MAX_NODES;
	if (!(t->root = parse(t, data, len)))
		return -1;
	t->resources = json_object_get(t->root, "Resources");
	if (!json_is_object(t->resources)) {
		errf(t, "Resources: expected a mapping of resources");
		json_decref(t->root);
		return -1;
	}
	json_object_foreach(t->root, k, v)
		if (!listed(k, top))
			warnf(t, "template section %s is not supported: ignored", k);
	t->novalue = json_object();
	return 0;
}

static void teardown(struct tmpl *t)
{
	json_decref(t->root);
	json_decref(t->novalue);
}

json_t *gw_tmpl_to_api(const char *data, size_t len, const gw_tmpl_opts_t *o, gw_buf_t *warn,
		       gw_buf_t *err)
{
	struct tmpl t;
	struct api_out a = { 0 };
	json_t *p;

	if (setup(&t, data, len, o, warn, err))
		return NULL;
	if (!(a.id = pick_api(&t)) || !(p = props(&t, a.id)))
		goto fail;
	a.http = str(p, "ProtocolType") && !strcmp(str(p, "ProtocolType"), "HTTP");
	if (!a.http && (!str(p, "ProtocolType") || strcmp(str(p, "ProtocolType"), "WEBSOCKET")))
		warnf(&t, "%s: ProtocolType %s: read as WEBSOCKET", a.id,
		      str(p, "ProtocolType") ? str(p, "ProtocolType") : "(none)");
	a.api = json_object();
	a.route_ids = json_object();
	map_api(&t, &a, p);
	json_decref(p);
	gw_apiid_derive(json_string_value(json_object_get(a.api, "name")), a.api_id);
	json_object_set_new(a.api, "integrations", json_object());
	json_object_set_new(a.api, "authorizers", json_object());
	json_object_set_new(a.api, "routes", json_object());
	map_each(&t, &a, "AWS::ApiGatewayV2::Integration", map_integration);
	map_each(&t, &a, "AWS::ApiGatewayV2::Authorizer", map_authorizer);
	map_each(&t, &a, "AWS::ApiGatewayV2::Route", map_route);
	map_each(&t, &a, "AWS::ApiGatewayV2::RouteResponse", map_route_response);
	map_each(&t, &a, "AWS::ApiGatewayV2::Stage", map_stage);
	if (!json_object_size(json_object_get(a.api, "authorizers")))
		json_object_del(a.api, "authorizers");
	warn_unmapped(&t, a.id);
	json_decref(a.route_ids);
	if (t.failed)
		goto fail;
	teardown(&t);
	return a.api;
fail:
	json_decref(a.api);
	teardown(&t);
	return NULL;
}

/* ---- Functions for the runner ---------------------------------------- */

/* Globals.Function under the function's own properties; Environment
 * variables merge one by one, as SAM does. */
static json_t *with_globals(struct tmpl *t, json_t *own)
{
	json_t *g = json_object_get(json_object_get(t->root, "Globals"), "Function"), *out, *ge;

	if (!g)
		return json_incref(own);
	if (!(g = eval(t, g, 1)))
		return NULL;
	out = json_is_object(g) ? json_deep_copy(g) : json_object();
	json_object_update(out, own);
	ge = json_object_get(json_object_get(g, "Environment"), "Variables");
	if (json_is_object(ge)) {
		json_t *vars = json_deep_copy(ge);
		json_object_update(vars, json_object_get(json_object_get(own, "Environment"),
							 "Variables"));
		json_object_set_new(out, "Environment", json_pack("{s:o}", "Variables", vars));
	}
	json_decref(g);
	return out;
}

static json_t *function(struct tmpl *t, const char *id, const char *type, json_t *p)
{
	static const char *const known[] = { "Handler", "CodeUri", "Code", "Runtime", "Timeout",
		"MemorySize", "Environment", "FunctionName", "Description", "Architectures", "Tags",
		NULL };
	const char *runtime = str(p, "Runtime"), *k;
	json_t *f = json_object(), *env = json_object(), *v, *code = json_object_get(p, "Code");

	check_props(t, id, type, p, known);
	json_object_set_new(f, "handler", json_string(str(p, "Handler") ?: "index.handler"));
	if (str(p, "CodeUri"))
		json_object_set_new(f, "codeUri", json_string(str(p, "CodeUri")));
	else if (json_is_string(code))
		json_object_set(f, "codeUri", code);
	else {
		if (code || json_object_get(p, "CodeUri"))
			warnf(t, "%s: code in S3 or inline is not supported: the template's folder "
			      "is used", id);
		json_object_set_new(f, "codeUri", json_string("."));
	}
	if (runtime && strncmp(runtime, "nodejs", 6))
		warnf(t, "%s: Runtime %s: the runner serves Node.js handlers only", id, runtime);
	json_object_set_new(f, "runtime", json_string(runtime ? runtime : "nodejs20.x"));
	json_object_set_new(f, "timeout", as_number(json_object_get(p, "Timeout")) ?:
					  json_integer(3));
	json_object_set_new(f, "memorySize", as_number(json_object_get(p, "MemorySize")) ?:
					     json_integer(128));
	json_object_set_new(f, "functionName", json_string(str(p, "FunctionName") ?: id));
	json_object_foreach(json_object_get(json_object_get(p, "Environment"), "Variables"), k, v) {
		gw_buf_t b;
		gw_buf_init(&b);
		if (append_text(t, &b, v, "Environment")) {
			gw_buf_dispose(&b);
			continue;
		}
		json_object_set_new(env, k, buf_text(&b));
	}
	json_object_set_new(f, "environment", env);
	return f;
}

/* SAM's SimpleTable as the DynamoDB table it stands for. */
static json_t *simple_table(const char *id, json_t *p)
{
	static const char *const types[][2] = { { "String", "S" }, { "Number", "N" },
						{ "Binary", "B" } };
	json_t *pk = json_object_get(p, "PrimaryKey");
	const char *name = str(pk, "Name") ?: "id", *type = str(pk, "Type") ?: "String", *t = "S";

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(type, types[i][0]))
			t = types[i][1];
	return json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:s}], s:s}",
			 "TableName", str(p, "TableName") ?: id,
			 "KeySchema", "AttributeName", name, "KeyType", "HASH",
			 "AttributeDefinitions", "AttributeName", name, "AttributeType", t,
			 "BillingMode", "PAY_PER_REQUEST");
}

/* DynamoDB tables, for a local store: their Properties, evaluated, with
 * the table name a Ref to them gives (the logical ID) when unnamed. */
static void table(struct tmpl *t, json_t *tables, const char *id, const char *type, json_t *p)
{
	json_t *out;

	if (!strcmp(type, "AWS::Serverless::SimpleTable"))
		out = simple_table(id, p);
	else {
		out = json_incref(p);
		if (!str(p, "TableName"))
			json_object_set_new(out, "TableName", json_string(id));
	}
	json_object_set_new(tables, id, out);
}

json_t *gw_tmpl_functions(const char *data, size_t len, const gw_tmpl_opts_t *o,
			  gw_buf_t *warn, gw_buf_t *err)
{
	struct tmpl t;
	json_t *fns = json_object(), *tables = json_object(), *r, *p, *all;
	const char *id;

	if (setup(&t, data, len, o, warn, err)) {
		json_decref(fns);
		json_decref(tables);
		return NULL;
	}
	json_object_foreach(t.resources, id, r) {
		const char *type = res_type(&t, id);
		int is_table = is_table_type(type);
		if (!is_function_type(type) && !is_table)
			continue;
		if (!(p = props(&t, id)))
			break;
		if (is_table) {
			table(&t, tables, id, type, p);
			json_decref(p);
			continue;
		}
		all = with_globals(&t, p);
		json_decref(p);
		if (!all)
			break;
		json_object_set_new(fns, id, function(&t, id, type, all));
		json_decref(all);
	}
	if (t.failed) {
		json_decref(fns);
		json_decref(tables);
		teardown(&t);
		return NULL;
	}
	teardown(&t);
	return json_pack("{s:o, s:o}", "functions", fns, "tables", tables);
}

int gw_tmpl_is_template(const char *path)
{
	size_t n = strlen(path);

	return (n > 5 && !strcmp(path + n - 5, ".yaml")) || (n > 4 && !strcmp(path + n - 4, ".yml")) ||
	       (n > 9 && !strcmp(path + n - 9, ".template"));
}

int gw_tmpl_read_file(const char *path, char **data, size_t *len, gw_buf_t *err)
{
	struct stat st;
	FILE *f = NULL;
	char *d = NULL;

	errno = 0;
	/* A FIFO or a device would be read forever. */
	if (stat(path, &st) || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE ||
	    !(f = fopen(path, "rb")))
		goto fail;
	if (!(d = malloc((size_t)st.st_size + 1)))
		abort();
	*len = fread(d, 1, (size_t)st.st_size, f);
	if (ferror(f))
		goto fail;
	fclose(f);
	d[*len] = '\0';
	*data = d;
	return 0;
fail:
	gw_buf_append_str(err, path);
	gw_buf_append_str(err, ": cannot read");
	if (errno) {
		gw_buf_append_str(err, ": ");
		gw_buf_append_str(err, strerror(errno));
	}
	gw_buf_append_str(err, " (expected a regular file of at most 16 MiB)\n");
	if (f)
		fclose(f);
	free(d);
	return -1;
}
