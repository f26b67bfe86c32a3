#include "escape.h"

#include <stdbool.h>

size_t utf8_seq_len(const unsigned char *s, size_t n, unsigned *cp)
{
	unsigned c = s[0], v;
	size_t len, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond Unicode */
	if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
	    (v >= 0xd800 && v <= 0xdfff) || v > 0x10ffff)
		return 0;
	*cp = v;
	return len;
}

static bool is_c1(unsigned cp)
{
	return cp >= 0x80 && cp <= 0x9f;
}

void esc_text(FILE *f, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, len;
	unsigned cp;

	while (i < n) {
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			fputc(c, f);
			i++;
			continue;
		}
		switch (c) {
		case '\\': fputs("\\\\", f); i++; continue;
		case '\n': fputs("\\n", f); i++; continue;
		case '\r': fputs("\\r", f); i++; continue;
		case '\t': fputs("\\t", f); i++; continue;
		}
		len = c >= 0x80 ? utf8_seq_len(s + i, n - i, &cp) : 0;
		/* U+2028/2029 break lines in some terminals and viewers */
		if (len && !is_c1(cp) && cp != 0x2028 && cp != 0x2029) {
			fwrite(s + i, 1, len, f);
			i += len;
			continue;
		}
		if (len) {	/* a valid but unsafe code point: show every byte */
			for (size_t k = 0; k < len; k++)
				fprintf(f, "\\x%02x", s[i + k]);
			i += len;
			continue;
		}
		fprintf(f, "\\x%02x", c);
		i++;
	}
}

size_t esc_json(FILE *f, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, len, replaced = 0;
	unsigned cp;

	while (i < n) {
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x7f) {
			switch (c) {
			case '"': fputs("\\\"", f); break;
			case '\\': fputs("\\\\", f); break;
			case '<': case '>': case '&':
				fprintf(f, "\\u%04x", c);
				break;
			default: fputc(c, f);
			}
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			switch (c) {
			case '\n': fputs("\\n", f); break;
			case '\r': fputs("\\r", f); break;
			case '\t': fputs("\\t", f); break;
			default: fprintf(f, "\\u%04x", c);
			}
			i++;
			continue;
		}
		len = utf8_seq_len(s + i, n - i, &cp);
		if (!len) {
			fputs("\\ufffd", f);
			replaced++;
			i++;
			continue;
		}
		if (cp == 0x2028 || cp == 0x2029 || is_c1(cp))
			fprintf(f, "\\u%04x", cp);
		else
			fwrite(s + i, 1, len, f);
		i += len;
	}
	return replaced;
}

void esc_xml(FILE *f, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, len;
	unsigned cp;

	while (i < n) {
		unsigned char c = s[i];

		switch (c) {
		case '&': fputs("&amp;", f); i++; continue;
		case '<': fputs("&lt;", f); i++; continue;
		case '>': fputs("&gt;", f); i++; continue;
		case '"': fputs("&quot;", f); i++; continue;
		case '\'': fputs("&#39;", f); i++; continue;
		case '\t': case '\n': fputc(c, f); i++; continue;
		}
		if (c >= 0x20 && c < 0x7f) {
			fputc(c, f);
			i++;
			continue;
		}
		len = c >= 0x80 ? utf8_seq_len(s + i, n - i, &cp) : 0;
		if (len && !is_c1(cp) && cp != 0xfffe && cp != 0xffff) {
			fwrite(s + i, 1, len, f);
			i += len;
			continue;
		}
		fputs("\xef\xbf\xbd", f);	/* U+FFFD */
		i += len ? len : 1;
	}
}
