/*
 * render: the simulated LED matrix. Text lines (already formatted, with a
 * colour each) are drawn with the built-in 5x7 font into a canvas of
 * width x height pixels, one 8-pixel-high row per line, scrolling lines
 * that do not fit; the canvas is then printed with ANSI colours, or as
 * '#'/'.' art for tests. Pure: no I/O except the FILE* the caller passes.
 */
#ifndef MX_RENDER_H
#define MX_RENDER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MX_GLYPH_W 5
#define MX_GLYPH_H 7
#define MX_CELL_W 6   /* glyph plus one blank column */
#define MX_ROW_H 8    /* glyph plus one blank row */
#define MX_SCROLL_GAP 12 /* blank pixels between the end of a scrolling text and its restart */
#define MX_TEXT_MAX 512  /* bytes of one rendered line, NUL included */

typedef enum {
  MX_COLOR_OFF = 0,
  MX_COLOR_WHITE,
  MX_COLOR_RED,
  MX_COLOR_GREEN,
  MX_COLOR_YELLOW,
  MX_COLOR_BLUE,
  MX_COLOR_MAGENTA,
  MX_COLOR_CYAN,
  MX_COLOR_ORANGE,
  MX_COLOR_GREY,
  MX_COLOR_COUNT_
} mx_color_t;

/* "white", "red", ...; static text. */
const char *mx_color_name(mx_color_t c);
/* 0 and *out, or SC_EINVAL for an unknown name. */
__attribute__((warn_unused_result)) int mx_color_parse(const char *name, mx_color_t *out);

/* The stream's state as the indicator shows it. */
typedef enum { MX_STATUS_LIVE = 0, MX_STATUS_CONNECTING, MX_STATUS_STALE } mx_status_t;

typedef struct mx_line {
  char text[MX_TEXT_MAX]; /* UTF-8 */
  mx_color_t color;
} mx_line_t;

/* The 7 rows of a glyph (bit 4 leftmost); unknown code points give '?'. */
const uint8_t *mx_font_glyph(uint32_t cp);

/* Width in pixels of text drawn with the font (0 for ""). */
int mx_text_width(const char *text);
/* First text column shown at the left edge on frame tick: 0 when the text
 * fits, else tick modulo (text_px + MX_SCROLL_GAP) (one pixel per tick). */
int mx_scroll_offset(int text_px, int width, uint64_t tick);

typedef struct mx_canvas {
  int w, h;
  uint8_t *px; /* owned, w*h mx_color_t values, row-major */
} mx_canvas_t;

/* 0 or SC_ENOMEM / SC_EINVAL (w, h must be 1..1024); release with _dispose. */
__attribute__((warn_unused_result)) int mx_canvas_init(mx_canvas_t *c, int w, int h);
void mx_canvas_dispose(mx_canvas_t *c);
/*
 * Clear and draw lines[0..n) (borrowed) at rows 0, 8, 16, ... (lines that
 * do not fit are not drawn), scrolled for tick. When status is not LIVE a
 * 2x2 indicator is drawn in the top-right corner: yellow while connecting,
 * red when stale (blinking with tick), and lit pixels are drawn grey when
 * stale so old data is visibly old.
 */
void mx_render(mx_canvas_t *c, const mx_line_t *lines, size_t n, uint64_t tick, mx_status_t status);
/* Print the canvas with ANSI colours ("●" lit, "·" dark), then status_text
 * (may be NULL) on its own line. */
void mx_canvas_print_ansi(const mx_canvas_t *c, const char *status_text, FILE *f);
/* '#' lit, '.' dark, '\n' after each row, NUL-terminated in out (cap must be
 * at least h*(w+1)+1). Returns the length or 0 if it does not fit. */
size_t mx_canvas_ascii(const mx_canvas_t *c, char *out, size_t cap);

#endif
