#define _POSIX_C_SOURCE 200112L
#include "block_cache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HEADER 64
#define ALIGNMENT 64
#define MIN_CACHED ((size_t)256 << 10)
#define PAGE ((size_t)4096)
#define SLOTS 512

typedef struct {
    size_t size; /* usable bytes after the header */
} header;

static struct {
    pthread_mutex_t lock;
    void *block[SLOTS];  /* freed blocks (header addresses), oldest first */
    size_t size[SLOTS];
    int count;
    size_t held, limit;
} cache = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, 0, 0, (size_t)2 << 30};

static size_t rounded(size_t size) {
    if (size < MIN_CACHED) {
        return size;
    }
    return (size + PAGE - 1) / PAGE * PAGE;
}

static void *data_of(header *h) {
    return (char *)h + HEADER;
}

static header *header_of(void *ptr) {
    return (header *)((char *)ptr - HEADER);
}

/* Removes and returns a cached block of exactly this size, or NULL. */
static header *take(size_t size) {
    header *found = NULL;
    pthread_mutex_lock(&cache.lock);
    for (int i = cache.count - 1; i >= 0; i--) {
        if (cache.size[i] == size) {
            found = cache.block[i];
            memmove(&cache.block[i], &cache.block[i + 1], (size_t)(cache.count - i - 1) * sizeof(void *));
            memmove(&cache.size[i], &cache.size[i + 1], (size_t)(cache.count - i - 1) * sizeof(size_t));
            cache.count--;
            cache.held -= size;
            break;
        }
    }
    pthread_mutex_unlock(&cache.lock);
    return found;
}

void *wt_cache_malloc(size_t size) {
    size_t want = rounded(size ? size : 1);
    if (want > SIZE_MAX - HEADER) {
        return NULL;
    }
    header *h = want >= MIN_CACHED ? take(want) : NULL;
    if (!h) {
        void *p = NULL;
        if (posix_memalign(&p, ALIGNMENT, HEADER + want) != 0) {
            return NULL;
        }
        h = p;
        h->size = want;
    }
    return data_of(h);
}

void *wt_cache_calloc(size_t nelem, size_t elsize) {
    if (elsize && nelem > SIZE_MAX / elsize) {
        return NULL;
    }
    void *p = wt_cache_malloc(nelem * elsize);
    if (p) {
        memset(p, 0, nelem * elsize);
    }
    return p;
}

void wt_cache_free(void *ptr) {
    if (!ptr) {
        return;
    }
    header *h = header_of(ptr);
    if (h->size < MIN_CACHED) {
        free(h);
        return;
    }
    void *evicted[SLOTS];
    int n_evicted = 0;
    int kept = 0;
    pthread_mutex_lock(&cache.lock);
    if (h->size <= cache.limit) {
        while (cache.count > 0 && (cache.count == SLOTS || cache.held + h->size > cache.limit)) {
            evicted[n_evicted++] = cache.block[0];
            cache.held -= cache.size[0];
            cache.count--;
            memmove(&cache.block[0], &cache.block[1], (size_t)cache.count * sizeof(void *));
            memmove(&cache.size[0], &cache.size[1], (size_t)cache.count * sizeof(size_t));
        }
        cache.block[cache.count] = h;
        cache.size[cache.count] = h->size;
        cache.count++;
        cache.held += h->size;
        kept = 1;
    }
    pthread_mutex_unlock(&cache.lock);
    for (int i = 0; i < n_evicted; i++) {
        free(evicted[i]);
    }
    if (!kept) {
        free(h);
    }
}

void *wt_cache_realloc(void *ptr, size_t new_size) {
    if (!ptr) {
        return wt_cache_malloc(new_size);
    }
    size_t old = header_of(ptr)->size;
    if (rounded(new_size ? new_size : 1) == old) {
        return ptr;
    }
    void *p = wt_cache_malloc(new_size);
    if (!p) {
        return NULL;
    }
    memcpy(p, ptr, old < new_size ? old : new_size);
    wt_cache_free(ptr);
    return p;
}

void wt_cache_set_limit(size_t bytes) {
    pthread_mutex_lock(&cache.lock);
    cache.limit = bytes;
    pthread_mutex_unlock(&cache.lock);
    if (wt_cache_held() > bytes) {
        wt_cache_clear();
    }
}

size_t wt_cache_limit(void) {
    pthread_mutex_lock(&cache.lock);
    size_t limit = cache.limit;
    pthread_mutex_unlock(&cache.lock);
    return limit;
}

size_t wt_cache_held(void) {
    pthread_mutex_lock(&cache.lock);
    size_t held = cache.held;
    pthread_mutex_unlock(&cache.lock);
    return held;
}

void wt_cache_clear(void) {
    void *blocks[SLOTS];
    pthread_mutex_lock(&cache.lock);
    int n = cache.count;
    memcpy(blocks, cache.block, (size_t)n * sizeof(void *));
    cache.count = 0;
    cache.held = 0;
    pthread_mutex_unlock(&cache.lock);
    for (int i = 0; i < n; i++) {
        free(blocks[i]);
    }
}
