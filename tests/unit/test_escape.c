/* Escaping hostile text for terminals, JSON and XML; the JSON writer. */
#include <stdlib.h>

#include "escape.h"
#include "json_writer.h"
#include "unit.h"

static char *text_of(void (*fn)(FILE *, const char *, size_t), const char *s, size_t n)
{
	struct unit_buf b;

	fn(unit_buf_open(&b), s, n);
	unit_buf_close(&b);
	return b.data;
}

static void json_fn(FILE *f, const char *s, size_t n)
{
	esc_json(f, s, n);
}

static void test_text_controls(void)
{
	const char in[] = "a\x1b[2Jb\n\t\\c\x7f\r";
	char *out = text_of(esc_text, in, sizeof(in) - 1);

	CHECK_STR(out, "a\\x1b[2Jb\\n\\t\\\\c\\x7f\\r");
	free(out);
}

static void test_text_utf8(void)
{
	/* valid: é and a snowman kept; C1 (U+009B CSI) and invalid bytes shown */
	const char in[] = "\xc3\xa9 \xe2\x98\x83 \xc2\x9b \xff\xc3";
	char *out = text_of(esc_text, in, sizeof(in) - 1);

	CHECK_STR(out, "\xc3\xa9 \xe2\x98\x83 \\xc2\\x9b \\xff\\xc3");
	free(out);
}

static void test_utf8_rejects_overlong_and_surrogates(void)
{
	unsigned cp;

	CHECK_INT(utf8_seq_len((const unsigned char *)"\xc0\xaf", 2, &cp), 0);
	CHECK_INT(utf8_seq_len((const unsigned char *)"\xe0\x80\xaf", 3, &cp), 0);
	CHECK_INT(utf8_seq_len((const unsigned char *)"\xed\xa0\x80", 3, &cp), 0);
	CHECK_INT(utf8_seq_len((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp), 0);
	CHECK_INT(utf8_seq_len((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
	CHECK_INT(cp, 0x1f600);
	CHECK_INT(utf8_seq_len((const unsigned char *)"\xe2\x98", 2, &cp), 0);
}

static void test_json_string(void)
{
	const char in[] = "q\"\\</script>&\x01\n\xe2\x80\xa8\xff\xc3\xa9";
	char *out = text_of(json_fn, in, sizeof(in) - 1);

	CHECK_STR(out, "q\\\"\\\\\\u003c/script\\u003e\\u0026\\u0001\\n\\u2028\\ufffd\xc3\xa9");
	free(out);
}

static void test_xml(void)
{
	const char in[] = "</svg><script>'&\"\x01\xff";
	char *out = text_of(esc_xml, in, sizeof(in) - 1);

	CHECK_STR(out, "&lt;/svg&gt;&lt;script&gt;&#39;&amp;&quot;\xef\xbf\xbd\xef\xbf\xbd");
	free(out);
}

static void test_json_writer_commas_and_nesting(void)
{
	struct unit_buf b;
	struct json_writer *jw = jw__new(unit_buf_open(&b));

	jw_start_object(jw);
	jw_kv_int(jw, "a", -1);
	jw_key(jw, "b");
	jw_start_array(jw);
	jw_uint(jw, 1);
	jw_string(jw, NULL);
	jw_start_object(jw);
	jw_end_object(jw);
	jw_bool(jw, true);
	jw_double(jw, 1.0 / 0.0);
	jw_end_array(jw);
	jw_key(jw, "c");
	jw_hex(jw, 0xdeadULL);
	jw_kv_string(jw, "d", "\xff");
	jw_end_object(jw);
	jw_newline(jw);
	jw_start_object(jw);
	jw_end_object(jw);
	jw_newline(jw);
	CHECK_INT(jw_replaced(jw), 1);
	jw__free(jw);
	unit_buf_close(&b);
	CHECK_STR(b.data, "{\"a\":-1,\"b\":[1,null,{},true,null],\"c\":\"0xdead\",\"d\":\"\\ufffd\"}\n{}\n");
	free(b.data);
}

int main(void)
{
	RUN(test_text_controls);
	RUN(test_text_utf8);
	RUN(test_utf8_rejects_overlong_and_surrogates);
	RUN(test_json_string);
	RUN(test_xml);
	RUN(test_json_writer_commas_and_nesting);
	return unit_summary();
}
