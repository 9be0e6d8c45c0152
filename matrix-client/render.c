/*
 * render: font drawing, scrolling and terminal output (see render.h).
 */
#include "render.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

static const char *const color_names[MX_COLOR_COUNT_] = {"off",     "white", "red",    "green", "yellow",
                                                         "blue",    "magenta", "cyan", "orange", "grey"};
/* 256-colour palette indices for lit pixels. */
static const int ansi_256[MX_COLOR_COUNT_] = {236, 231, 196, 46, 226, 33, 201, 51, 208, 244};

const char *mx_color_name(mx_color_t c) { return (unsigned)c < MX_COLOR_COUNT_ ? color_names[c] : "?"; }

int mx_color_parse(const char *name, mx_color_t *out) {
  for (int i = 1; i < MX_COLOR_COUNT_; i++)
    if (strcmp(name, color_names[i]) == 0) {
      *out = (mx_color_t)i;
      return 0;
    }
  if (strcmp(name, "gray") == 0) {
    *out = MX_COLOR_GREY;
    return 0;
  }
  return SC_EINVAL;
}

/* Next code point of a UTF-8 string; invalid bytes come out as '?' one at a time. */
static uint32_t next_cp(const char **sp) {
  const unsigned char *s = (const unsigned char *)*sp;
  uint32_t cp;
  int n;
  if (s[0] < 0x80) cp = s[0], n = 1;
  else if ((s[0] & 0xE0) == 0xC0) cp = s[0] & 0x1F, n = 2;
  else if ((s[0] & 0xF0) == 0xE0) cp = s[0] & 0x0F, n = 3;
  else if ((s[0] & 0xF8) == 0xF0) cp = s[0] & 0x07, n = 4;
  else {
    *sp += 1;
    return '?';
  }
  for (int i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) {
      *sp += 1;
      return '?';
    }
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  *sp += n;
  return cp;
}

int mx_text_width(const char *text) {
  int n = 0;
  while (*text) {
    next_cp(&text);
    n++;
  }
  return n ? n * MX_CELL_W - 1 : 0;
}

int mx_scroll_offset(int text_px, int width, uint64_t tick) {
  if (text_px <= width) return 0;
  return (int)(tick % (uint64_t)(text_px + MX_SCROLL_GAP));
}

int mx_canvas_init(mx_canvas_t *c, int w, int h) {
  c->px = NULL;
  if (w < 1 || h < 1 || w > 1024 || h > 1024) return SC_EINVAL;
  c->px = calloc((size_t)w * (size_t)h, 1);
  if (!c->px) return SC_ENOMEM;
  c->w = w;
  c->h = h;
  return 0;
}

void mx_canvas_dispose(mx_canvas_t *c) {
  free(c->px);
  c->px = NULL;
}

static void set_px(mx_canvas_t *c, int x, int y, mx_color_t col) {
  if (x >= 0 && y >= 0 && x < c->w && y < c->h) c->px[y * c->w + x] = (uint8_t)col;
}

/* Draw one line at pixel row y0, its text column `off` at the left edge;
 * the text repeats after text_px + gap when scrolling. */
static void draw_line(mx_canvas_t *c, const mx_line_t *l, int y0, uint64_t tick, mx_color_t col) {
  int text_px = mx_text_width(l->text);
  int off = mx_scroll_offset(text_px, c->w, tick);
  int period = text_px + MX_SCROLL_GAP;
  const char *s = l->text;
  int gx = 0; /* glyph's first text column */
  while (*s) {
    const uint8_t *g = mx_font_glyph(next_cp(&s));
    for (int copy = 0; copy < 2; copy++) {
      /* Where this glyph lands on screen, in this period and (when
       * scrolling) the next one wrapping in from the right. */
      int sx = gx - off + (copy ? period : 0);
      if (copy && text_px <= c->w) break;
      if (sx + MX_GLYPH_W <= 0 || sx >= c->w) continue;
      for (int row = 0; row < MX_GLYPH_H; row++)
        for (int bit = 0; bit < MX_GLYPH_W; bit++)
          if (g[row] & (0x10 >> bit)) set_px(c, sx + bit, y0 + row, col);
    }
    gx += MX_CELL_W;
  }
}

void mx_render(mx_canvas_t *c, const mx_line_t *lines, size_t n, uint64_t tick, mx_status_t status) {
  memset(c->px, 0, (size_t)c->w * (size_t)c->h);
  for (size_t i = 0; i < n && (int)i * MX_ROW_H < c->h; i++) {
    mx_color_t col = lines[i].color ? lines[i].color : MX_COLOR_WHITE;
    if (status == MX_STATUS_STALE) col = MX_COLOR_GREY;
    draw_line(c, &lines[i], (int)i * MX_ROW_H, tick, col);
  }
  if (status != MX_STATUS_LIVE) {
    mx_color_t ind = status == MX_STATUS_CONNECTING ? MX_COLOR_YELLOW : MX_COLOR_RED;
    if (status == MX_STATUS_STALE && (tick / 10) % 2) ind = MX_COLOR_OFF; /* blink */
    for (int y = 0; y < 2; y++)
      for (int x = c->w - 2; x < c->w; x++) set_px(c, x, y, ind);
  }
}

void mx_canvas_print_ansi(const mx_canvas_t *c, const char *status_text, FILE *f) {
  for (int y = 0; y < c->h; y++) {
    int cur = -1;
    for (int x = 0; x < c->w; x++) {
      int v = c->px[y * c->w + x];
      if (v != cur) {
        fprintf(f, "\033[38;5;%dm", ansi_256[v]);
        cur = v;
      }
      fputs(v ? "\u25cf" : "\u00b7", f);
    }
    fputs("\033[0m\033[K\n", f);
  }
  if (status_text) fprintf(f, "%s\033[K\n", status_text);
}

size_t mx_canvas_ascii(const mx_canvas_t *c, char *out, size_t cap) {
  size_t need = (size_t)c->h * ((size_t)c->w + 1) + 1;
  if (cap < need) return 0;
  size_t k = 0;
  for (int y = 0; y < c->h; y++) {
    for (int x = 0; x < c->w; x++) out[k++] = c->px[y * c->w + x] ? '#' : '.';
    out[k++] = '\n';
  }
  out[k] = '\0';
  return k;
}
