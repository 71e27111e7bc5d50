/* Router capture: llama.cpp's graph evaluation callback, in C.
 *
 * llama.cpp asks an installed callback about every node of every graph it computes, a hundred
 * times per token even for a tiny model; a Python callback doubles the time of a small model's
 * token. This one answers those questions in nanoseconds. It wants one node per layer,
 * `ffn_moe_weights-N` (the chosen experts' probabilities, f32 [1, k, n_tokens]): every wanted node
 * ends a piece of the graph, and each piece costs a round of thread synchronization. That node
 * gathers its weights by `ffn_moe_topk-N`, a view of `ffn_moe_argsort-N` (experts sorted by router
 * probability, int32 [n_expert, n_tokens]), still intact when the weights are computed; the first
 * k ids per token are the chosen experts. Both are copied into a buffer that
 * storyteller/engine/router_tap.py reads.
 *
 * It needs no ggml header: the offsets of ggml_tensor's fields and ggml_backend_tensor_get (which
 * also reads tensors on a GPU) come from Python, which checks them against ggml first.
 * Built as a Python extension module only so that setuptools compiles it with the package; Python
 * calls nothing in it but hands router_tap_eval to llama.cpp.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#ifdef _WIN32
#define TAP_EXPORT __declspec(dllexport)
#else
#define TAP_EXPORT __attribute__((visibility("default")))
#endif

typedef void (*tensor_get_fn)(const void *tensor, void *data, size_t offset, size_t size);

/* Mirrored by RouterTapState in router_tap.py: keep the two in step. */
struct router_tap {
    tensor_get_fn tensor_get; /* ggml_backend_tensor_get */
    uint64_t name_offset;     /* offsetof(struct ggml_tensor, name) */
    uint64_t ne_offset;       /* offsetof(struct ggml_tensor, ne) */
    uint64_t src_offset;      /* offsetof(struct ggml_tensor, src) */
    uint64_t view_src_offset; /* offsetof(struct ggml_tensor, view_src) */
    uint8_t *buffer;          /* records, one after another */
    uint64_t capacity;
    uint64_t used;
    int32_t experts_used;     /* k: how many of each token's sorted experts to keep */
    int32_t normalized;       /* set when the graph renormalizes the chosen experts' weights */
    int32_t overflow;         /* set when a record did not fit: the capture is incomplete */
    int32_t unknown_graph;    /* set when the weights were not gathered from an argsort */
};

/* A record: kind, layer, n_tokens, width (int32 each), then n_tokens x width values. */
enum { KIND_EXPERTS = 0, KIND_WEIGHTS = 1 };

/* The layer number in "<prefix><digits>", or -1 for any other name (views are "... (reshaped)"). */
static int layer_of(const char *name, const char *prefix, size_t prefix_length) {
    if (strncmp(name, prefix, prefix_length) != 0) {
        return -1;
    }
    const char *p = name + prefix_length;
    if (*p < '0' || *p > '9') {
        return -1;
    }
    int layer = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        layer = layer * 10 + (*p - '0');
    }
    return *p == '\0' ? layer : -1;
}

static const void *pointer_at(const void *tensor, uint64_t offset) {
    return *(const void *const *)((const char *)tensor + offset);
}

static void copy_record(struct router_tap *tap, const void *tensor, int kind, int layer) {
    const int64_t *ne = (const int64_t *)((const char *)tensor + tap->ne_offset);
    /* experts: [n_expert, n_tokens]; weights: [1, k, n_tokens] */
    int64_t row = kind == KIND_EXPERTS ? ne[0] : ne[1];
    int64_t n_tokens = kind == KIND_EXPERTS ? ne[1] : ne[2];
    int64_t width = row < tap->experts_used ? row : tap->experts_used;
    uint64_t header = 4 * sizeof(int32_t);
    uint64_t whole = (uint64_t)(row * n_tokens) * 4; /* read whole, then keep `width` per token */
    if (tap->used + header + whole > tap->capacity) {
        tap->overflow = 1;
        return;
    }
    uint8_t *out = tap->buffer + tap->used;
    int32_t head[4] = {kind, layer, (int32_t)n_tokens, (int32_t)width};
    memcpy(out, head, sizeof head);
    uint8_t *body = out + header;
    tap->tensor_get(tensor, body, 0, whole);
    if (width < row) {
        for (int64_t t = 1; t < n_tokens; t++) {
            memmove(body + t * width * 4, body + t * row * 4, (size_t)width * 4);
        }
    }
    tap->used += header + (uint64_t)(n_tokens * width) * 4;
}

/* ggml_backend_sched_eval_callback: asked (ask=true) whether a node's data is wanted, then called
 * again (ask=false) once a wanted node is computed; returning false then would stop the graph. */
TAP_EXPORT bool router_tap_eval(void *tensor, bool ask, void *user_data) {
    struct router_tap *tap = (struct router_tap *)user_data;
    const char *name = (const char *)tensor + tap->name_offset;
    if (name[0] != 'f' || strncmp(name, "ffn_moe_weights", 15) != 0) {
        return !ask;
    }
    int layer = layer_of(name, "ffn_moe_weights-", 16);
    if (ask) {
        if (layer < 0 && strncmp(name, "ffn_moe_weights_norm-", 21) == 0) {
            tap->normalized = 1;
        }
        return layer >= 0;
    }
    if (layer < 0) {
        return true;
    }
    /* weights = get_rows(probs, topk): src[1] is the topk view, its view_src the argsort */
    const void *topk = pointer_at(tensor, tap->src_offset + sizeof(void *));
    const void *argsort = topk ? pointer_at(topk, tap->view_src_offset) : NULL;
    if (argsort == NULL || layer_of((const char *)argsort + tap->name_offset, "ffn_moe_argsort-", 16) != layer) {
        tap->unknown_graph = 1;
        return true;
    }
    copy_record(tap, argsort, KIND_EXPERTS, layer);
    copy_record(tap, tensor, KIND_WEIGHTS, layer);
    return true;
}

static struct PyModuleDef router_tap_module = {PyModuleDef_HEAD_INIT, "_router_tap", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__router_tap(void) { return PyModule_Create(&router_tap_module); }
