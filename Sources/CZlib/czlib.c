// czlib.c — see czlib.h.
#include "czlib.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct czlib {
    z_stream z;
    int inflate;
    const uint8_t *dict;
    size_t dict_len;
};

void *czlib_new(int inflate, const uint8_t *dict, size_t dict_len) {
    struct czlib *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->inflate = inflate;
    s->dict = dict;
    s->dict_len = dict_len;
    int rc;
    if (inflate) {
        rc = inflateInit(&s->z);
    } else {
        rc = deflateInit(&s->z, Z_DEFAULT_COMPRESSION);
        if (rc == Z_OK) rc = deflateSetDictionary(&s->z, dict, (uInt)dict_len);
    }
    if (rc != Z_OK) {
        free(s);
        return NULL;
    }
    return s;
}

int czlib_run(void *stream, const uint8_t *in, size_t len, uint8_t **out, size_t *out_len) {
    struct czlib *s = stream;
    size_t cap = len * 2 + 256, used = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) return -1;
    s->z.next_in = (Bytef *)in;
    s->z.avail_in = (uInt)len;
    for (;;) {
        if (cap - used < 256) {
            uint8_t *bigger = realloc(buf, cap * 2);
            if (!bigger) goto fail;
            buf = bigger;
            cap *= 2;
        }
        s->z.next_out = buf + used;
        s->z.avail_out = (uInt)(cap - used);
        int rc;
        if (s->inflate) {
            rc = inflate(&s->z, Z_SYNC_FLUSH);
            if (rc == Z_NEED_DICT) {
                if (inflateSetDictionary(&s->z, s->dict, (uInt)s->dict_len) != Z_OK) goto fail;
                rc = Z_OK;
            }
        } else {
            rc = deflate(&s->z, Z_SYNC_FLUSH);
        }
        used = cap - s->z.avail_out;
        if (rc == Z_BUF_ERROR && s->z.avail_in == 0) break;  // nothing more to do
        if (rc != Z_OK && rc != Z_STREAM_END) goto fail;
        // Done when the input is used up and the output had room left (all flushed).
        if (s->z.avail_in == 0 && s->z.avail_out > 0) break;
    }
    if (used == 0) {
        free(buf);
        buf = NULL;
    }
    *out = buf;
    *out_len = used;
    return 0;
fail:
    free(buf);
    return -1;
}

void czlib_free(void *stream) {
    struct czlib *s = stream;
    if (s->inflate) inflateEnd(&s->z);
    else deflateEnd(&s->z);
    free(s);
}
