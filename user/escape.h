/*
 * Escaping text that comes from the traced process.
 *
 * SQL, error messages and thread names are hostile: they can hold terminal
 * escape sequences, any control byte, invalid UTF-8, HTML and quotes.  Every
 * output format goes through one of these writers; none of them can fail
 * except through the FILE (check ferror() at the end).
 */
#ifndef PQSNOOP_ESCAPE_H
#define PQSNOOP_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

/*
 * Length of the valid UTF-8 sequence at s[0..n), or 0 if s[0] does not start
 * one (overlong forms, surrogates and code points over U+10FFFF are invalid).
 * Sets *cp to the code point when it returns non-zero.
 */
size_t utf8_seq_len(const unsigned char *s, size_t n, unsigned *cp);

/*
 * For a terminal: printable ASCII and valid printable UTF-8 stay as they are;
 * backslash becomes "\\", \n \r \t become "\n" "\r" "\t", every other control
 * character (C0, DEL, C1) and every invalid byte becomes "\xNN".  So the
 * output is one line and no byte from the process reaches the terminal as a
 * control sequence.
 */
void esc_text(FILE *f, const char *s, size_t n);

/*
 * The body of a JSON string (without the quotes).  Valid UTF-8 is kept; '"'
 * and '\' are escaped; control characters, U+2028/U+2029 and '<' '>' '&' are
 * written as \uXXXX so the JSON can be embedded in HTML or JS safely; each
 * invalid byte becomes U+FFFD (JSON cannot carry raw bytes; the count of
 * replaced bytes is returned so callers can flag it).
 */
size_t esc_json(FILE *f, const char *s, size_t n);

/*
 * Text for XML/HTML/SVG: & < > " ' become entities, control characters
 * other than tab/newline and invalid bytes become U+FFFD (XML 1.0 forbids
 * them even as character references).
 */
void esc_xml(FILE *f, const char *s, size_t n);

#endif /* PQSNOOP_ESCAPE_H */
