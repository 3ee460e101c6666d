/* The host's voice mixer in C: the JACK process callback without Python.
 *
 * Same rules as realtime/voices.py (``PyVoices``, the spec; tests/test_cmix.py checks the
 * two agree sample for sample): hits start at their frame in the block, choke groups and
 * stolen voices fade over ``fade_len`` frames, at most ``polyphony`` voices fade at once,
 * and each output then passes the master limiter (realtime/limiter.py).
 *
 * Why C: a Python process callback must take the GIL every period, and any other thread
 * of the host (OSC, UI, render bookkeeping) holding it makes the callback late. Here the
 * real-time thread runs no Python at all: it reads MIDI, mixes and returns.
 *
 * Threads and memory: every array is owned by Python (numpy) and lives as long as the
 * mixer. Python writes only through ``fs_push`` (hits), ``fs_set_pad`` (a pad's buffer,
 * under a per-pad sequence lock, so the callback never sees a pointer with another
 * buffer's length) and plain aligned stores to the per-pad tables; the callback never
 * blocks, never allocates, never frees. A replaced pad buffer is kept alive by Python
 * until every voice that could hold it has ended (``Engine._retire``).
 *
 * JACK: no headers are needed at build time; the few functions used are looked up in the
 * libjack the ``jack`` package has already loaded (``fs_jack_attach``).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef struct {
    /* sizes, set once */
    int32_t n_pads, n_slots, polyphony, fade_len, ring_size, ctl_size;
    const float *ramp;                 /* [fade_len], 1 -> 0 */
    /* per pad: Python writes, the callback reads */
    uint64_t *pad_seq;                 /* odd while fs_set_pad writes */
    const float **pad_buf;
    int64_t *pad_len;
    int32_t *pad_group;                /* choke group, -1 none */
    uint8_t *pad_split;                /* 1: to the second output */
    int64_t *pad_generation, *pad_wanted, *stale_from;
    int64_t *last_hit;                 /* the callback writes */
    /* voices, [n_slots] each; the callback writes, Python only reads (UI, tests) */
    uint8_t *v_active;
    int32_t *v_pad;
    int64_t *v_pos, *v_len, *v_age, *v_fade;
    float *v_gain;
    const float **v_buf;
    /* hits from Python: a single-producer ring (the GIL serialises producers) */
    int32_t *ring_pad, *ring_offset;
    float *ring_gain;
    int64_t ring_head, ring_tail, ring_dropped;
    /* counters */
    int64_t age, frames_done, hits, steals, stale_hits, stale_frames, stale_frames_max;
    /* JACK */
    void *client, *out_port[2], *midi_port;
    int32_t n_out, split;              /* split: the split pads go to out_port[1] */
    const int16_t *note_pad;           /* [16 * 128]: channel, note -> pad or -1 */
    const float *vel_gain;             /* [128] */
    uint8_t *ctl;                      /* [ctl_size * 4]: other MIDI messages for Python (len, bytes) */
    int64_t ctl_head, ctl_tail, ctl_dropped;
    int64_t midi_notes, midi_skipped, callbacks, callback_ns, callback_max_ns, start_late_max;
    /* the master limiter (realtime/limiter.py, the spec): ceiling 0 = off */
    double lim_ceiling, lim_release, lim_snap, lim_gain[2], lim_min_gain;
    int64_t lim_frames;
} fs_state;

/* ------------------------------------------------------------------ voices */

static void read_pad(fs_state *s, int pad, const float **buf, int64_t *len) {
    uint64_t a, b;
    do {
        a = __atomic_load_n(&s->pad_seq[pad], __ATOMIC_ACQUIRE);
        *buf = __atomic_load_n(&s->pad_buf[pad], __ATOMIC_RELAXED);
        *len = __atomic_load_n(&s->pad_len[pad], __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        b = __atomic_load_n(&s->pad_seq[pad], __ATOMIC_RELAXED);
    } while ((a & 1) || a != b);
}

static void start_voice(fs_state *s, int pad, float gain) {
    int n = s->n_slots, v;
    int group = s->pad_group[pad];
    if (group >= 0)
        for (v = 0; v < n; v++)
            if (s->v_active[v] && s->v_fade[v] < 0 && s->v_pad[v] != pad && s->pad_group[s->v_pad[v]] == group)
                s->v_fade[v] = 0;
    int live = 0, oldest = -1;
    for (v = 0; v < n; v++)
        if (s->v_active[v] && s->v_fade[v] < 0) {
            live++;
            if (oldest < 0 || s->v_age[v] < s->v_age[oldest]) oldest = v;
        }
    if (live >= s->polyphony) {
        s->v_fade[oldest] = 0;  /* stolen: it fades out in its slot */
        s->steals++;
    }
    for (;;) {  /* at most ``polyphony`` fading: cut the one furthest into its fade (ties: oldest) */
        int count = 0, cut = -1;
        for (v = 0; v < n; v++)
            if (s->v_active[v] && s->v_fade[v] >= 0) {
                count++;
                if (cut < 0 || s->v_fade[v] > s->v_fade[cut] ||
                    (s->v_fade[v] == s->v_fade[cut] && s->v_age[v] < s->v_age[cut]))
                    cut = v;
            }
        if (count <= s->polyphony) break;
        s->v_active[cut] = 0;
        s->v_fade[cut] = -1;
    }
    int slot = 0;
    while (slot < n && s->v_active[slot]) slot++;
    if (slot == n) return;  /* cannot happen: 2 * polyphony slots, at most 2 * polyphony - 1 taken */
    read_pad(s, pad, &s->v_buf[slot], &s->v_len[slot]);
    s->age++;
    s->v_pad[slot] = pad;
    s->v_pos[slot] = 0;
    s->v_gain[slot] = gain;
    s->v_age[slot] = s->age;
    s->v_fade[slot] = -1;
    __atomic_store_n(&s->v_active[slot], 1, __ATOMIC_RELEASE);
    s->last_hit[pad] = s->frames_done;
    s->hits++;
    if (s->pad_generation[pad] < s->pad_wanted[pad]) {
        int64_t lag = s->frames_done - s->stale_from[pad];
        s->stale_hits++;
        s->stale_frames += lag;
        if (lag > s->stale_frames_max) s->stale_frames_max = lag;
    }
}

/* Add every active voice to out[a:b] (split[a:b] for split pads, when split) and advance it. */
static void mix(fs_state *s, float *out, float *split, int64_t a, int64_t b) {
    for (int v = 0; v < s->n_slots; v++) {
        if (!s->v_active[v]) continue;
        const float *buf = s->v_buf[v];
        int64_t pos = s->v_pos[v], len = s->v_len[v], fade = s->v_fade[v];
        int64_t n = b - a < len - pos ? b - a : len - pos;
        if (fade >= 0 && s->fade_len - fade < n) n = s->fade_len - fade;
        if (n > 0) {
            float *dest = (split && s->pad_split[s->v_pad[v]]) ? split + a : out + a;
            const float *src = buf + pos;
            float g = s->v_gain[v];
            if (fade >= 0) {
                const float *r = s->ramp + fade;
                for (int64_t i = 0; i < n; i++) {
                    float t = src[i] * g;
                    t = t * r[i];
                    dest[i] = dest[i] + t;
                }
                s->v_fade[v] = fade + n;
            } else {
                for (int64_t i = 0; i < n; i++) dest[i] = dest[i] + src[i] * g;
            }
            s->v_pos[v] = pos + n;
        }
        if (s->v_pos[v] >= len || (s->v_fade[v] >= 0 && s->v_fade[v] >= s->fade_len)) {
            s->v_active[v] = 0;
            s->v_buf[v] = NULL;
        }
    }
}

/* One hit at ``offset``: mix up to it, then start it (offsets clamp to the block, in order). */
static void hit_at(fs_state *s, float *out, float *split, int64_t frames, int64_t *start, int pad, float gain,
                   int64_t offset) {
    int64_t at = offset < *start ? *start : offset;
    if (at > frames) at = frames;
    if (at > *start) {
        mix(s, out, split, *start, at);
        *start = at;
    }
    if (pad >= 0 && pad < s->n_pads) start_voice(s, pad, gain);
}

static void take_hits(fs_state *s, float *out, float *split, int64_t frames, int64_t *start) {
    int64_t tail = s->ring_tail, head = __atomic_load_n(&s->ring_head, __ATOMIC_ACQUIRE);
    for (; tail < head; tail++) {
        int64_t k = tail % s->ring_size;
        hit_at(s, out, split, frames, start, s->ring_pad[k], s->ring_gain[k], s->ring_offset[k]);
    }
    __atomic_store_n(&s->ring_tail, tail, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------ blocks (and JACK's MIDI in them) */

typedef uint32_t jack_nframes_t;
typedef struct {
    jack_nframes_t time;
    size_t size;
    unsigned char *buffer;
} jack_midi_event_t;
typedef int (*JackProcessCallback)(jack_nframes_t, void *);

static int (*j_set_process_callback)(void *, JackProcessCallback, void *);
static void *(*j_port_get_buffer)(void *, jack_nframes_t);
static uint32_t (*j_midi_get_event_count)(void *);
static int (*j_midi_event_get)(jack_midi_event_t *, void *, uint32_t);
static jack_nframes_t (*j_frames_since_cycle_start)(void *);

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void to_python(fs_state *s, const unsigned char *data, size_t size) {
    int64_t head = s->ctl_head, tail = __atomic_load_n(&s->ctl_tail, __ATOMIC_ACQUIRE);
    if (head - tail >= s->ctl_size) {
        s->ctl_dropped++;
        return;
    }
    uint8_t *m = s->ctl + 4 * (head % s->ctl_size);
    m[0] = (uint8_t)size;
    memset(m + 1, 0, 3);
    memcpy(m + 1, data, size);
    __atomic_store_n(&s->ctl_head, head + 1, __ATOMIC_RELEASE);
}

/* The cycle's MIDI: note-ons with a pad start here, at their frame; other short messages go to Python. */
static void read_midi(fs_state *s, float *out, float *split, int64_t frames, int64_t *start) {
    void *mb = j_port_get_buffer(s->midi_port, (jack_nframes_t)frames);
    uint32_t count = j_midi_get_event_count(mb);
    jack_midi_event_t ev;
    for (uint32_t i = 0; i < count; i++) {
        if (j_midi_event_get(&ev, mb, i) != 0) continue;
        if (ev.size == 0 || ev.size > 3) {  /* sysex (never used), or a size no note or CC has */
            s->midi_skipped++;
            continue;
        }
        const unsigned char *d = ev.buffer;
        if (d[0] >= 0xF0) continue;  /* system common and real-time messages are never used */
        if (ev.size == 3 && (d[0] & 0xF0) == 0x90 && d[2] > 0 && d[1] < 128) {
            int pad = s->note_pad[(d[0] & 0x0F) * 128 + d[1]];
            if (pad >= 0) {
                s->midi_notes++;
                hit_at(s, out, split, frames, start, pad, s->vel_gain[d[2] & 0x7F], ev.time);
                continue;
            }
        }
        to_python(s, d, ev.size);
    }
}

/* The master limiter on one output, in place: ``Limiter.apply`` of realtime/limiter.py,
 * operation for operation in double precision, so the two mixers agree sample for sample. */
static void limit(fs_state *s, float *buf, int64_t frames, int channel) {
    double c = s->lim_ceiling, r = s->lim_release, g = s->lim_gain[channel], low = s->lim_min_gain;
    if (c <= 0.0) return;
    int64_t limited = 0;
    for (int64_t i = 0; i < frames; i++) {
        double x = (double)buf[i];
        g = 1.0 - (1.0 - g) * r;
        if (g > 1.0 - s->lim_snap) g = 1.0;
        double a = x < 0.0 ? -x : x;
        if (a * g > c) g = c / a;
        if (g < 1.0) {
            limited++;
            if (g < low) low = g;
        }
        buf[i] = (float)(g * x);
    }
    s->lim_gain[channel] = g;
    s->lim_frames += limited;
    s->lim_min_gain = low;
}

/* One block into out [frames] (and split, may be NULL), both overwritten: the queued hits
 * first (as queued before this block), then with ``midi`` the cycle's MIDI, then the rest. */
static void block(fs_state *s, float *out, float *split, int64_t frames, int midi) {
    int64_t start = 0;
    memset(out, 0, (size_t)frames * sizeof(float));
    if (split) memset(split, 0, (size_t)frames * sizeof(float));
    take_hits(s, out, split, frames, &start);
    if (midi) read_midi(s, out, split, frames, &start);
    if (start < frames) mix(s, out, split, start, frames);
    limit(s, out, frames, 0);
    if (split) limit(s, split, frames, 1);
    s->frames_done += frames;
}

/* ``Engine.process`` off JACK: one block, no MIDI (a polled port queued its hits already). */
void fs_process(fs_state *s, float *out, float *split, int64_t frames) { block(s, out, split, frames, 0); }

/* ------------------------------------------------------------------ Python's side */

/* A hit from any Python thread (the caller holds the GIL: one producer at a time).
 * Returns 0 when the ring is full (the hit is dropped and counted). */
int fs_push(fs_state *s, int32_t pad, float gain, int32_t offset) {
    int64_t head = s->ring_head, tail = __atomic_load_n(&s->ring_tail, __ATOMIC_ACQUIRE);
    if (head - tail >= s->ring_size) {
        s->ring_dropped++;
        return 0;
    }
    int64_t k = head % s->ring_size;
    s->ring_pad[k] = pad;
    s->ring_gain[k] = gain;
    s->ring_offset[k] = offset;
    __atomic_store_n(&s->ring_head, head + 1, __ATOMIC_RELEASE);
    return 1;
}

/* A pad's new buffer (Python keeps it alive); voices already playing keep the old one. */
void fs_set_pad(fs_state *s, int32_t pad, const float *buf, int64_t len) {
    uint64_t seq = s->pad_seq[pad];
    __atomic_store_n(&s->pad_seq[pad], seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&s->pad_buf[pad], buf, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pad_len[pad], len, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pad_seq[pad], seq + 2, __ATOMIC_RELEASE);
}

/* Next MIDI message the callback left for Python's control thread: its length (0: none). */
int fs_ctl_pop(fs_state *s, uint8_t *data) {
    int64_t tail = s->ctl_tail, head = __atomic_load_n(&s->ctl_head, __ATOMIC_ACQUIRE);
    if (tail >= head) return 0;
    const uint8_t *m = s->ctl + 4 * (tail % s->ctl_size);
    int n = m[0];
    memcpy(data, m + 1, 3);
    __atomic_store_n(&s->ctl_tail, tail + 1, __ATOMIC_RELEASE);
    return n;
}

/* ------------------------------------------------------------------ the JACK callback */

static int jack_process(jack_nframes_t frames, void *arg) {
    fs_state *s = (fs_state *)arg;
    int64_t t0 = now_ns();
    int64_t late = j_frames_since_cycle_start(s->client);
    if (late > s->start_late_max) s->start_late_max = late;
    float *out = (float *)j_port_get_buffer(s->out_port[0], frames);
    float *second = s->n_out > 1 ? (float *)j_port_get_buffer(s->out_port[1], frames) : NULL;
    float *split = s->split && second ? second : NULL;
    block(s, out, split, frames, s->midi_port != NULL);
    if (second && !split) memcpy(second, out, (size_t)frames * sizeof(float));
    int64_t dt = now_ns() - t0;
    s->callback_ns = dt;
    if (dt > s->callback_max_ns) s->callback_max_ns = dt;
    __atomic_store_n(&s->callbacks, s->callbacks + 1, __ATOMIC_RELEASE);
    return 0;
}

/* Make the mixer the client's process callback (before activating it). 0 on success,
 * else -1 (libjack or a function not found) or JACK's own error code. */
int fs_jack_attach(fs_state *s) {
    void *lib = dlopen("libjack.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (!lib) lib = dlopen("libjack.so.0", RTLD_NOW);
    if (!lib) return -1;
    j_set_process_callback = (int (*)(void *, JackProcessCallback, void *))dlsym(lib, "jack_set_process_callback");
    j_port_get_buffer = (void *(*)(void *, jack_nframes_t))dlsym(lib, "jack_port_get_buffer");
    j_midi_get_event_count = (uint32_t (*)(void *))dlsym(lib, "jack_midi_get_event_count");
    j_midi_event_get = (int (*)(jack_midi_event_t *, void *, uint32_t))dlsym(lib, "jack_midi_event_get");
    j_frames_since_cycle_start = (jack_nframes_t (*)(void *))dlsym(lib, "jack_frames_since_cycle_start");
    if (!j_set_process_callback || !j_port_get_buffer || !j_midi_get_event_count || !j_midi_event_get ||
        !j_frames_since_cycle_start)
        return -1;
    return j_set_process_callback(s->client, jack_process, s);
}

size_t fs_state_size(void) { return sizeof(fs_state); }

/* An importable module, so the package finds this library where it was installed. */
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cmix", "flowshot's C voice mixer (used via ctypes)", -1, NULL};
PyMODINIT_FUNC PyInit__cmix(void) { return PyModule_Create(&module); }
