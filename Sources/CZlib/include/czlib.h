// czlib.h — one zlib stream (deflate or inflate) with a preset dictionary, flushed after
// every block: what SPDY/3's header compression needs (SPDY §2.6.10.1). zlib itself does the
// work; this is the part of its API Swift cannot call (its init functions are macros).
#ifndef CZLIB_H
#define CZLIB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A compressor (`inflate` 0) or decompressor (1) using `dict` as its preset dictionary, or
/// NULL when out of memory. The dictionary must outlive the stream.
void *_Nullable czlib_new(int inflate, const uint8_t *_Nonnull dict, size_t dict_len);
/// Feeds `len` bytes and returns in `*out` (malloc'd, the caller frees; NULL when empty)
/// everything the stream produces, ending with a sync flush for a compressor. Returns 0, or -1
/// when the input is not valid for this stream (the stream is unusable after that).
int czlib_run(void *_Nonnull stream, const uint8_t *_Nullable in, size_t len,
              uint8_t *_Nullable *_Nonnull out, size_t *_Nonnull out_len);
void czlib_free(void *_Nonnull stream);

#ifdef __cplusplus
}
#endif
#endif
