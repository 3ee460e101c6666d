/* The JACK tests' and benchmarks' probe client, in C: records two audio inputs and writes
 * queued MIDI messages, every one stamped with the JACK frame it went out at.
 *
 * Why C: the probe lives in the test or benchmark process, which holds torch and runs
 * the playing loop; as a Python callback it needed that process's GIL every cycle and
 * was the late client of most xruns jackd logged in the real-time benchmark
 * (docs/benchmarks.md, 2026-12-03 later), which made the host's own xruns unreadable.
 * Built by tests/test_realtime_jack.py with the system C compiler; libjack's functions
 * come from the libjack the ``jack`` package has loaded.
 */

#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

typedef uint32_t jack_nframes_t;
typedef int (*JackProcessCallback)(jack_nframes_t, void *);

static int (*j_set_process_callback)(void *, JackProcessCallback, void *);
static void *(*j_port_get_buffer)(void *, jack_nframes_t);
static void (*j_midi_clear_buffer)(void *);
static int (*j_midi_event_write)(void *, jack_nframes_t, const unsigned char *, size_t);
static jack_nframes_t (*j_last_frame_time)(void *);

typedef struct {
    void *client, *in[2], *midi_out;
    float *rec[2];            /* [rec_len]: rec[c][i] is frame rec_start + i */
    int64_t rec_len, rec_start, recorded;
    uint8_t *req_data;        /* [ring * 4]: length, then up to 3 bytes */
    int32_t *req_at;          /* frame inside the cycle */
    int64_t *req_frame;       /* the JACK frame it went out at (the callback writes) */
    int64_t ring, head, tail, write_failed;
} probe_t;

static int process(jack_nframes_t frames, void *arg) {
    probe_t *p = (probe_t *)arg;
    int64_t t = j_last_frame_time(p->client);
    if (p->rec_start < 0) p->rec_start = t;
    int64_t i = t - p->rec_start;
    if (i >= 0 && i + frames <= p->rec_len) {
        for (int c = 0; c < 2; c++)
            if (p->in[c]) memcpy(p->rec[c] + i, j_port_get_buffer(p->in[c], frames), frames * sizeof(float));
        __atomic_store_n(&p->recorded, i + frames, __ATOMIC_RELEASE);
    }
    void *mb = j_port_get_buffer(p->midi_out, frames);
    j_midi_clear_buffer(mb);
    int64_t tail = p->tail, head = __atomic_load_n(&p->head, __ATOMIC_ACQUIRE);
    jack_nframes_t last = 0;
    for (; tail < head; tail++) {
        int64_t k = tail % p->ring;
        jack_nframes_t at = p->req_at[k] < 0 ? 0 : (jack_nframes_t)p->req_at[k];
        if (at >= frames) at = frames - 1;
        if (at < last) at = last;  /* JACK wants the events of a cycle in time order */
        last = at;
        if (j_midi_event_write(mb, at, p->req_data + 4 * k + 1, p->req_data[4 * k]) != 0) p->write_failed++;
        p->req_frame[k] = t + at;
    }
    __atomic_store_n(&p->tail, tail, __ATOMIC_RELEASE);
    return 0;
}

/* A message for the next cycle; returns its index (``probe_sent`` says when it went), -1 when full. */
int64_t probe_push(probe_t *p, const uint8_t *data, int32_t len, int32_t at) {
    int64_t head = p->head;
    if (head - __atomic_load_n(&p->tail, __ATOMIC_ACQUIRE) >= p->ring) return -1;  /* full: try again later */
    int64_t k = head % p->ring;
    p->req_data[4 * k] = (uint8_t)(len > 3 ? 3 : len);
    memcpy(p->req_data + 4 * k + 1, data, len > 3 ? 3 : len);
    p->req_at[k] = at;
    __atomic_store_n(&p->head, head + 1, __ATOMIC_RELEASE);
    return head;
}

/* ``n`` messages (``packed``: 4 bytes each, length then 3 bytes) for the next cycle, all or
 * none: the callback sees them together. Returns the last one's index, -1 when no room. */
int64_t probe_push_burst(probe_t *p, const uint8_t *packed, int64_t n) {
    int64_t head = p->head;
    if (n <= 0 || head + n - __atomic_load_n(&p->tail, __ATOMIC_ACQUIRE) > p->ring) return -1;
    for (int64_t j = 0; j < n; j++) {
        int64_t k = (head + j) % p->ring;
        memcpy(p->req_data + 4 * k, packed + 4 * j, 4);
        p->req_at[k] = 0;
    }
    __atomic_store_n(&p->head, head + n, __ATOMIC_RELEASE);
    return head + n - 1;
}

/* The JACK frame message ``index`` went out at, or -1 while it has not. */
int64_t probe_sent(probe_t *p, int64_t index) {
    if (__atomic_load_n(&p->tail, __ATOMIC_ACQUIRE) <= index) return -1;
    return p->req_frame[index % p->ring];
}

int64_t probe_recorded(probe_t *p) { return __atomic_load_n(&p->recorded, __ATOMIC_ACQUIRE); }

int probe_attach(probe_t *p) {
    void *lib = dlopen("libjack.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (!lib) lib = dlopen("libjack.so.0", RTLD_NOW);
    if (!lib) return -1;
    j_set_process_callback = (int (*)(void *, JackProcessCallback, void *))dlsym(lib, "jack_set_process_callback");
    j_port_get_buffer = (void *(*)(void *, jack_nframes_t))dlsym(lib, "jack_port_get_buffer");
    j_midi_clear_buffer = (void (*)(void *))dlsym(lib, "jack_midi_clear_buffer");
    j_midi_event_write = (int (*)(void *, jack_nframes_t, const unsigned char *, size_t))dlsym(lib, "jack_midi_event_write");
    j_last_frame_time = (jack_nframes_t (*)(void *))dlsym(lib, "jack_last_frame_time");
    if (!j_set_process_callback || !j_port_get_buffer || !j_midi_clear_buffer || !j_midi_event_write ||
        !j_last_frame_time)
        return -1;
    return j_set_process_callback(p->client, process, p);
}

size_t probe_size(void) { return sizeof(probe_t); }
