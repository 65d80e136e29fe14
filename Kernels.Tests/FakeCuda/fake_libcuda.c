/*
 * A stand-in for libcuda.so.1 that runs on the CPU, for testing GpuActivations' CUDA binding on machines without
 * a GPU. It implements the driver entry points the library binds, with the C prototypes of cuda.h, and checks what a
 * real driver would refuse: a call without the context current on the calling thread (contexts are per thread), a
 * copy or kernel argument outside any allocation, an unknown stream, an image that is neither cubin nor PTX, a bad
 * launch shape. "Device" memory is host memory. The module image (a real cubin from NVRTC) is not executed: kernels are
 * emulated in C by entry name, with the argument lists of the shared kernels in Kernels/Device (plus the tests' own
 * test_add_one), and the launch rules those kernels rely on are checked: float4 kernels get 16-byte aligned rows
 * (else CUDA_ERROR_MISALIGNED_ADDRESS, as a GPU would fault), the softmax kernels that need GA_GROUP_SIZE get
 * blocks of 256, a register-resident softmax covers every column of its rows. Activations are computed in double;
 * which one a unary or GLU kernel applies is set by the test (fakecuda_set_activation), since the fake cannot read
 * it from the cubin. The fakecuda_* exports let tests set up cases and inspect counts (live allocations, context
 * retains, ...).
 *
 * Build: cc -shared -fPIC -O1 -o libgpuactivations-fakecuda.so fake_libcuda.c -lm -lpthread
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct fake_context *CUcontext;
typedef struct fake_module *CUmodule;
typedef struct fake_function *CUfunction;
typedef struct fake_stream *CUstream;
typedef struct fake_event *CUevent;

#define EXPORT __attribute__((visibility("default")))

enum {
    OK = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_INITIALIZED = 3, NO_DEVICE = 100, INVALID_DEVICE = 101,
    INVALID_IMAGE = 200, INVALID_CONTEXT = 201, INVALID_HANDLE = 400, NOT_FOUND = 500, ILLEGAL_ADDRESS = 700,
    LAUNCH_OUT_OF_RESOURCES = 701, MISALIGNED_ADDRESS = 716
};

/* GA_GROUP_SIZE of CudaDevice's programs: the rows, partial and finish softmax kernels need blocks of exactly this. */
#define FAKE_GROUP_SIZE 256

struct fake_context { int device; };
struct fake_module { int magic; };
struct fake_function { int id; const char *name; };
struct fake_stream { int magic; unsigned flags; };
struct fake_event { int magic; double recorded_ms; };

struct allocation { char *base; size_t bytes; struct allocation *next; };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int initialized, device_count = 1;
static struct fake_context primary = { 0 };
static int primary_refs;
static __thread CUcontext current;
static struct allocation *allocations;
static long live_allocations, live_streams, live_modules, live_events, launches, context_errors;
static unsigned last_grid, last_block, last_grid_y, last_block_y;
static char last_kernel[64];

enum {
    K_ADD_ONE, K_UNARY, K_UNARY_VEC4, K_PRELU, K_GLU, K_GLU_VEC4, K_SOFTMAX_ROWS, K_SOFTMAX_PARTIAL, K_SOFTMAX_FINISH,
    K_SOFTMAX_REG1, K_SOFTMAX_REG2, K_SOFTMAX_REG4, K_SOFTMAX_REG8, K_SOFTMAX_REG16, K_SOFTMAX_REG32, K_COUNT
};
static struct fake_function functions[K_COUNT] = {
    { K_ADD_ONE, "test_add_one" }, { K_UNARY, "ga_unary" }, { K_UNARY_VEC4, "ga_unary_vec4" }, { K_PRELU, "ga_prelu" },
    { K_GLU, "ga_glu" }, { K_GLU_VEC4, "ga_glu_vec4" }, { K_SOFTMAX_ROWS, "ga_softmax_rows" },
    { K_SOFTMAX_PARTIAL, "ga_softmax_partial" }, { K_SOFTMAX_FINISH, "ga_softmax_finish" },
    { K_SOFTMAX_REG1, "ga_softmax_registers_1" }, { K_SOFTMAX_REG2, "ga_softmax_registers_2" },
    { K_SOFTMAX_REG4, "ga_softmax_registers_4" }, { K_SOFTMAX_REG8, "ga_softmax_registers_8" },
    { K_SOFTMAX_REG16, "ga_softmax_registers_16" }, { K_SOFTMAX_REG32, "ga_softmax_registers_32" },
};

/* The activation the unary and GLU kernels apply (the tests name it; the cubin is not executed). */
enum { A_AFFINE, A_IDENTITY, A_RELU, A_SILU, A_SIGMOID };
static int activation = A_AFFINE;

static int context_ok(void)
{
    int ok;
    pthread_mutex_lock(&lock);
    ok = initialized && current == &primary && primary_refs > 0;
    if (!ok) context_errors++;
    pthread_mutex_unlock(&lock);
    return ok;
}
#define NEED_CONTEXT do { if (!context_ok()) return INVALID_CONTEXT; } while (0)

/* Whether [p, p + bytes) lies inside one live allocation. */
static int in_allocation(const void *p, size_t bytes)
{
    int found = 0;
    pthread_mutex_lock(&lock);
    for (struct allocation *a = allocations; a; a = a->next)
        if ((const char *)p >= a->base && (const char *)p + bytes <= a->base + a->bytes) { found = 1; break; }
    pthread_mutex_unlock(&lock);
    return found;
}

static int stream_ok(CUstream s) { return s == NULL || s->magic == 0x57AE; }

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------ test controls */
EXPORT void fakecuda_set_device_count(int n) { device_count = n; }
EXPORT long fakecuda_live_allocations(void) { return live_allocations; }
EXPORT long fakecuda_live_streams(void) { return live_streams; }
EXPORT long fakecuda_live_modules(void) { return live_modules; }
EXPORT long fakecuda_live_events(void) { return live_events; }
EXPORT int fakecuda_primary_refs(void) { return primary_refs; }
EXPORT long fakecuda_launches(void) { return launches; }
EXPORT long fakecuda_context_errors(void) { return context_errors; }
EXPORT unsigned fakecuda_last_grid(void) { return last_grid; }
EXPORT unsigned fakecuda_last_block(void) { return last_block; }
EXPORT unsigned fakecuda_last_grid_y(void) { return last_grid_y; }
EXPORT unsigned fakecuda_last_block_y(void) { return last_block_y; }
EXPORT const char *fakecuda_last_kernel(void) { return last_kernel; }
EXPORT void fakecuda_clear_current(void) { current = NULL; }

/* "test_affine" (x * alpha + beta, the default), "test_identity", "relu", "silu", "sigmoid"; 0 when known. */
EXPORT int fakecuda_set_activation(const char *name)
{
    static const char *names[] = { "test_affine", "test_identity", "relu", "silu", "sigmoid" };
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0) { activation = i; return 0; }
    return -1;
}

/* ------------------------------------------------------------------ init, errors, devices */
EXPORT CUresult cuInit(unsigned flags)
{
    if (flags != 0) return INVALID_VALUE;
    if (device_count <= 0) return NO_DEVICE;
    initialized = 1;
    return OK;
}

EXPORT CUresult cuDriverGetVersion(int *v) { if (!v) return INVALID_VALUE; *v = 12040; return OK; }

static const char *error_name(CUresult e)
{
    switch (e) {
    case OK: return "CUDA_SUCCESS";
    case INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
    case INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
    case INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
    case NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
    case ILLEGAL_ADDRESS: return "CUDA_ERROR_ILLEGAL_ADDRESS";
    case LAUNCH_OUT_OF_RESOURCES: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
    case MISALIGNED_ADDRESS: return "CUDA_ERROR_MISALIGNED_ADDRESS";
    default: return NULL;
    }
}

EXPORT CUresult cuGetErrorName(CUresult e, const char **s)
{
    *s = error_name(e);
    return *s ? OK : INVALID_VALUE;
}

EXPORT CUresult cuGetErrorString(CUresult e, const char **s)
{
    *s = error_name(e) ? "fake driver error" : NULL;
    return *s ? OK : INVALID_VALUE;
}

#define NEED_INIT do { if (!initialized) return NOT_INITIALIZED; } while (0)

EXPORT CUresult cuDeviceGetCount(int *n) { NEED_INIT; *n = device_count; return OK; }

EXPORT CUresult cuDeviceGet(CUdevice *d, int ordinal)
{
    NEED_INIT;
    if (ordinal < 0 || ordinal >= device_count) return INVALID_DEVICE;
    *d = ordinal;
    return OK;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice d)
{
    NEED_INIT;
    if (d < 0 || d >= device_count) return INVALID_DEVICE;
    snprintf(name, (size_t)len, "GpuActivations fake CUDA device %d", d);
    return OK;
}

EXPORT CUresult cuDeviceGetAttribute(int *v, int attribute, CUdevice d)
{
    NEED_INIT;
    if (d < 0 || d >= device_count) return INVALID_DEVICE;
    switch (attribute) {
    case 1: *v = 1024; return OK;      /* max threads per block */
    case 8: *v = 49152; return OK;     /* shared memory per block */
    case 10: *v = 32; return OK;       /* warp size */
    case 13: *v = 1755000; return OK;  /* clock kHz */
    case 16: *v = 4; return OK;        /* SMs: few, so grid caps show */
    case 36: *v = 2619000; return OK;  /* memory clock kHz */
    case 37: *v = 5120; return OK;     /* bus width */
    case 38: *v = 52428800; return OK; /* L2 */
    case 39: *v = 2048; return OK;     /* threads per SM */
    case 75: *v = 9; return OK;        /* compute capability */
    case 76: *v = 0; return OK;
    default: return INVALID_VALUE;
    }
}

EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d)
{
    NEED_INIT;
    if (d < 0 || d >= device_count) return INVALID_DEVICE;
    *bytes = (size_t)80 << 30;
    return OK;
}

/* ------------------------------------------------------------------ contexts */
EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d)
{
    NEED_INIT;
    if (d != 0) return INVALID_DEVICE;
    pthread_mutex_lock(&lock);
    primary_refs++;
    pthread_mutex_unlock(&lock);
    *c = &primary;
    return OK;
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d)
{
    CUresult r = OK;
    NEED_INIT;
    if (d != 0) return INVALID_DEVICE;
    pthread_mutex_lock(&lock);
    if (primary_refs <= 0) r = INVALID_CONTEXT; else primary_refs--;
    pthread_mutex_unlock(&lock);
    return r;
}

EXPORT CUresult cuCtxSetCurrent(CUcontext c)
{
    NEED_INIT;
    if (c != NULL && (c != &primary || primary_refs <= 0)) return INVALID_CONTEXT;
    current = c;
    return OK;
}

EXPORT CUresult cuCtxGetCurrent(CUcontext *c) { NEED_INIT; *c = current; return OK; }
EXPORT CUresult cuCtxGetDevice(CUdevice *d) { NEED_CONTEXT; *d = current->device; return OK; }
EXPORT CUresult cuCtxSynchronize(void) { NEED_CONTEXT; return OK; }

/* ------------------------------------------------------------------ memory */
EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t bytes)
{
    NEED_CONTEXT;
    if (bytes == 0) return INVALID_VALUE;
    struct allocation *a = malloc(sizeof *a);
    if (!a) return OUT_OF_MEMORY;
    a->base = malloc(bytes);
    if (!a->base) { free(a); return OUT_OF_MEMORY; }
    memset(a->base, 0xA5, bytes); /* uninitialised memory is not zero */
    a->bytes = bytes;
    pthread_mutex_lock(&lock);
    a->next = allocations;
    allocations = a;
    live_allocations++;
    pthread_mutex_unlock(&lock);
    *p = (CUdeviceptr)(uintptr_t)a->base;
    return OK;
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr p)
{
    NEED_CONTEXT;
    pthread_mutex_lock(&lock);
    for (struct allocation **link = &allocations; *link; link = &(*link)->next) {
        struct allocation *a = *link;
        if ((CUdeviceptr)(uintptr_t)a->base == p) {
            *link = a->next;
            live_allocations--;
            pthread_mutex_unlock(&lock);
            free(a->base);
            free(a);
            return OK;
        }
    }
    pthread_mutex_unlock(&lock);
    return INVALID_VALUE;
}

#define DEV(p) ((void *)(uintptr_t)(p))

EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
    NEED_CONTEXT;
    if (!in_allocation(DEV(dst), n)) return INVALID_VALUE;
    memcpy(DEV(dst), src, n);
    return OK;
}

EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n)
{
    NEED_CONTEXT;
    if (!in_allocation(DEV(src), n)) return INVALID_VALUE;
    memcpy(dst, DEV(src), n);
    return OK;
}

EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
    NEED_CONTEXT;
    if (!in_allocation(DEV(dst), n) || !in_allocation(DEV(src), n)) return INVALID_VALUE;
    memmove(DEV(dst), DEV(src), n);
    return OK;
}

EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s)
{
    if (!stream_ok(s)) return INVALID_HANDLE;
    return cuMemcpyHtoD_v2(dst, src, n);
}

EXPORT CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s)
{
    if (!stream_ok(s)) return INVALID_HANDLE;
    return cuMemcpyDtoH_v2(dst, src, n);
}

EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
{
    if (!stream_ok(s)) return INVALID_HANDLE;
    return cuMemcpyDtoD_v2(dst, src, n);
}

EXPORT CUresult cuMemsetD32_v2(CUdeviceptr dst, unsigned value, size_t n)
{
    NEED_CONTEXT;
    if ((dst & 3) != 0 || !in_allocation(DEV(dst), n * 4)) return INVALID_VALUE;
    for (size_t i = 0; i < n; i++) ((unsigned *)DEV(dst))[i] = value;
    return OK;
}

EXPORT CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned value, size_t n, CUstream s)
{
    if (!stream_ok(s)) return INVALID_HANDLE;
    return cuMemsetD32_v2(dst, value, n);
}

/* ------------------------------------------------------------------ modules */
EXPORT CUresult cuModuleLoadData(CUmodule *m, const void *image)
{
    NEED_CONTEXT;
    const unsigned char *b = image;
    int elf = b[0] == 0x7F && b[1] == 'E' && b[2] == 'L' && b[3] == 'F';
    int ptx = !elf && strstr((const char *)image, ".version") != NULL && strstr((const char *)image, ".target") != NULL;
    if (!elf && !ptx) return INVALID_IMAGE;
    struct fake_module *module = malloc(sizeof *module);
    module->magic = 0x30D;
    pthread_mutex_lock(&lock);
    live_modules++;
    pthread_mutex_unlock(&lock);
    *m = module;
    return OK;
}

EXPORT CUresult cuModuleUnload(CUmodule m)
{
    NEED_CONTEXT;
    if (!m || m->magic != 0x30D) return INVALID_HANDLE;
    m->magic = 0;
    free(m);
    pthread_mutex_lock(&lock);
    live_modules--;
    pthread_mutex_unlock(&lock);
    return OK;
}

EXPORT CUresult cuModuleGetFunction(CUfunction *f, CUmodule m, const char *name)
{
    NEED_CONTEXT;
    if (!m || m->magic != 0x30D) return INVALID_HANDLE;
    for (int i = 0; i < K_COUNT; i++)
        if (strcmp(functions[i].name, name) == 0) { *f = &functions[i]; return OK; }
    return NOT_FOUND;
}

/* ------------------------------------------------------------------ kernels, emulated */
#define ARG(type, i) (*(type *)params[i])
#define CHECK(p, count) do { if ((count) > 0 && !in_allocation((p), (size_t)(count) * sizeof(float))) return ILLEGAL_ADDRESS; } while (0)
#define ALIGNED16(p) ((((uintptr_t)(p)) & 15) == 0)
#define FAIL(code, ...) do { fprintf(stderr, "fake libcuda: " __VA_ARGS__); fputc('\n', stderr); return (code); } while (0)

static double act(double x, double alpha, double beta)
{
    switch (activation) {
    case A_AFFINE: return x * alpha + beta;
    case A_IDENTITY: return x;
    case A_RELU: return x < 0 ? 0 : x;
    case A_SILU: return x == -INFINITY ? -0.0 : x / (1 + exp(-x));
    case A_SIGMOID: return 1 / (1 + exp(-x));
    default: return NAN;
    }
}

static int is_pow2(long long v) { return v > 0 && (v & (v - 1)) == 0; }

/* One row of softmax as the kernels define it: NaN or +inf anywhere, or only -inf, gives a NaN row. */
static void softmax_row(const float *in, float *out, long long cols, int log_out)
{
    double m = -INFINITY, s = 0;
    int bad = 0;
    for (long long c = 0; c < cols; c++) {
        if (isnan(in[c]) || in[c] == INFINITY) bad = 1;
        else if (in[c] > m) m = in[c];
    }
    if (bad || m == -INFINITY) {
        for (long long c = 0; c < cols; c++) out[c] = NAN;
        return;
    }
    for (long long c = 0; c < cols; c++) s += exp((double)in[c] - m);
    for (long long c = 0; c < cols; c++) out[c] = (float)(log_out ? ((double)in[c] - m) - log(s) : exp((double)in[c] - m) / s);
}

/* The softmax options that follow a kernel's shape arguments from index i: (scale, mask, maskOffset, maskStride, flags).
   The fake emulates plain softmax and log-softmax only (flags 0 or 1, scale 1); anything else is refused. */
static CUresult softmax_flags(void **params, int i, int *log_out)
{
    int flags = ARG(int, i + 4);
    if (ARG(float, i) != 1.0f || (flags & ~1)) FAIL(INVALID_VALUE, "the fake softmax has no scale, mask or safe rows (flags %d)", flags);
    *log_out = flags & 1;
    return OK;
}

/* ga_softmax_rows and ga_softmax_registers_P: (x, xOffset, y, yOffset, rows, cols, lanes, options). */
static CUresult softmax(void **params, int per_lane, unsigned block)
{
    const float *x = ARG(const float *, 0) + ARG(long long, 1);
    float *y = ARG(float *, 2) + ARG(long long, 3);
    long long rows = ARG(long long, 4), cols = ARG(long long, 5);
    int lanes = ARG(int, 6), log_out = 0;
    CUresult options = softmax_flags(params, 7, &log_out);
    if (options != OK) return options;
    if (per_lane == 0) {
        if (block != FAKE_GROUP_SIZE) FAIL(INVALID_VALUE, "ga_softmax_rows needs blocks of %d, got %u", FAKE_GROUP_SIZE, block);
        if (!is_pow2(lanes) || lanes > FAKE_GROUP_SIZE) FAIL(INVALID_VALUE, "ga_softmax_rows: slice %d", lanes);
    } else {
        if (lanes <= 32 ? !is_pow2(lanes) || block % (unsigned)lanes != 0 : (unsigned)lanes != block || block % 32 != 0)
            FAIL(INVALID_VALUE, "ga_softmax_registers_%d: %d lanes in blocks of %u", per_lane, lanes, block);
        if ((long long)lanes * per_lane < cols)
            FAIL(INVALID_VALUE, "ga_softmax_registers_%d: %d lanes leave columns of rows of %lld uncomputed", per_lane, lanes, cols);
    }
    CHECK(x, rows * cols);
    CHECK(y, rows * cols);
    for (long long r = 0; r < rows; r++) softmax_row(x + r * cols, y + r * cols, cols, log_out);
    return OK;
}

static CUresult softmax_split(int id, void **params, unsigned block)
{
    if (block != FAKE_GROUP_SIZE) FAIL(INVALID_VALUE, "the split softmax needs blocks of %d, got %u", FAKE_GROUP_SIZE, block);
    const float *x = ARG(const float *, 0) + ARG(long long, 1);
    int finish = id == K_SOFTMAX_FINISH;
    int a = finish ? 4 : 2; /* index of rows */
    float *y = finish ? ARG(float *, 2) + ARG(long long, 3) : NULL;
    long long rows = ARG(long long, a), cols = ARG(long long, a + 1), chunks = ARG(long long, a + 2), length = ARG(long long, a + 3);
    float *partial = ARG(float *, a + 4);
    int log_out = 0;
    CUresult options = softmax_flags(params, a + 5, &log_out);
    if (options != OK) return options;
    if (chunks < 1 || length < 1 || chunks * length < cols || (chunks - 1) * length >= cols)
        FAIL(INVALID_VALUE, "split softmax: %lld chunks of %lld for rows of %lld", chunks, length, cols);
    CHECK(x, rows * cols);
    CHECK(partial, rows * chunks * 2);
    if (finish) CHECK(y, rows * cols);
    for (long long r = 0; r < rows; r++) {
        const float *in = x + r * cols;
        float *state = partial + r * chunks * 2;
        if (!finish) {
            for (long long k = 0; k < chunks; k++) {
                long long begin = k * length, end = begin + length < cols ? begin + length : cols;
                double m = -INFINITY, s = 0;
                for (long long c = begin; c < end; c++) {
                    double v = isnan(in[c]) ? INFINITY : in[c];
                    if (v > m) m = v;
                }
                if (m > -INFINITY && m < INFINITY)
                    for (long long c = begin; c < end; c++) s += exp((double)in[c] - m);
                state[2 * k] = (float)m;
                state[2 * k + 1] = (float)s;
            }
            continue;
        }
        double m = -INFINITY, s = 0;
        for (long long k = 0; k < chunks; k++) if (state[2 * k] > m) m = state[2 * k];
        if (!(m < INFINITY) || m == -INFINITY) {
            for (long long c = 0; c < cols; c++) y[r * cols + c] = NAN;
            continue;
        }
        for (long long k = 0; k < chunks; k++) if (state[2 * k] > -INFINITY) s += state[2 * k + 1] * exp(state[2 * k] - m);
        for (long long c = 0; c < cols; c++)
            y[r * cols + c] = (float)(log_out ? ((double)in[c] - m) - log(s) : exp((double)in[c] - m) / s);
    }
    return OK;
}

static CUresult run(int id, void **params, unsigned block)
{
    switch (id) {
    case K_ADD_ONE: {
        const float *x = ARG(const float *, 0);
        float *y = ARG(float *, 1);
        long long n = ARG(long long, 2);
        CHECK(x, n); CHECK(y, n);
        for (long long i = 0; i < n; i++) y[i] = x[i] + 1.0f;
        return OK;
    }
    case K_UNARY:
    case K_UNARY_VEC4: { /* (x, xOffset, y, yOffset, n, alpha, beta, threshold) */
        const float *x = ARG(const float *, 0) + ARG(long long, 1);
        float *y = ARG(float *, 2) + ARG(long long, 3);
        long long n = ARG(long long, 4);
        float alpha = ARG(float, 5), beta = ARG(float, 6);
        (void)ARG(float, 7);
        if (id == K_UNARY_VEC4 && (!ALIGNED16(x) || !ALIGNED16(y))) FAIL(MISALIGNED_ADDRESS, "ga_unary_vec4 on %p -> %p", (void *)x, (void *)y);
        CHECK(x, n); CHECK(y, n);
        for (long long i = 0; i < n; i++) y[i] = (float)act(x[i], alpha, beta);
        return OK;
    }
    case K_PRELU: {
        const float *x = ARG(const float *, 0) + ARG(long long, 1);
        const float *a = ARG(const float *, 2) + ARG(long long, 3);
        int channels = ARG(int, 4);
        float *y = ARG(float *, 5) + ARG(long long, 6);
        long long n = ARG(long long, 7);
        if (channels < 1) return INVALID_VALUE;
        CHECK(x, n); CHECK(y, n); CHECK(a, channels);
        for (long long i = 0; i < n; i++) y[i] = x[i] < 0 ? a[i % channels] * x[i] : x[i];
        return OK;
    }
    case K_GLU:
    case K_GLU_VEC4: { /* (gate, gateOffset, up, upOffset, rowStride, step, y, yOffset, rows, d, alpha, beta, threshold, limit) */
        const float *g = ARG(const float *, 0) + ARG(long long, 1);
        const float *u = ARG(const float *, 2) + ARG(long long, 3);
        long long rs = ARG(long long, 4), step = ARG(long long, 5);
        float *y = ARG(float *, 6) + ARG(long long, 7);
        long long rows = ARG(long long, 8), d = ARG(long long, 9);
        float alpha = ARG(float, 10), beta = ARG(float, 11), limit = ARG(float, 13);
        if (id == K_GLU_VEC4 && (step != 1 || !ALIGNED16(g) || !ALIGNED16(u) || !ALIGNED16(y)
                                 || (rows > 1 && (d % 4 != 0 || rs % 4 != 0))))
            FAIL(MISALIGNED_ADDRESS, "ga_glu_vec4 with rows not on 16 bytes (%lld x %lld, row stride %lld, step %lld)", rows, d, rs, step);
        CHECK(g, (rows - 1) * rs + (d - 1) * step + 1); CHECK(u, (rows - 1) * rs + (d - 1) * step + 1); CHECK(y, rows * d);
        for (long long r = 0; r < rows; r++)
            for (long long j = 0; j < d; j++)
            {
                float gv = g[r * rs + j * step], uv = u[r * rs + j * step];
                if (limit > 0)
                {
                    gv = gv > limit ? limit : gv;
                    uv = (uv > limit ? limit : uv < -limit ? -limit : uv) + 1.0f;
                }
                y[r * d + j] = (float)(act(gv, alpha, beta) * uv);
            }
        return OK;
    }
    case K_SOFTMAX_ROWS: return softmax(params, 0, block);
    case K_SOFTMAX_PARTIAL:
    case K_SOFTMAX_FINISH: return softmax_split(id, params, block);
    case K_SOFTMAX_REG1: return softmax(params, 1, block);
    case K_SOFTMAX_REG2: return softmax(params, 2, block);
    case K_SOFTMAX_REG4: return softmax(params, 4, block);
    case K_SOFTMAX_REG8: return softmax(params, 8, block);
    case K_SOFTMAX_REG16: return softmax(params, 16, block);
    case K_SOFTMAX_REG32: return softmax(params, 32, block);
    default:
        return INVALID_HANDLE;
    }
}

EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                               unsigned shared, CUstream s, void **params, void **extra)
{
    NEED_CONTEXT;
    if (!f || f < functions || f >= functions + K_COUNT) return INVALID_HANDLE;
    if (!stream_ok(s)) return INVALID_HANDLE;
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0) return INVALID_VALUE;
    if ((unsigned long long)bx * by * bz > 1024 || shared > 49152) return LAUNCH_OUT_OF_RESOURCES;
    if (!params || extra) return INVALID_VALUE;
    pthread_mutex_lock(&lock);
    launches++;
    last_grid = gx;
    last_block = bx;
    last_grid_y = gy;
    last_block_y = by;
    snprintf(last_kernel, sizeof last_kernel, "%s", f->name);
    pthread_mutex_unlock(&lock);
    return run(f->id, params, bx * by);
}

/* ------------------------------------------------------------------ streams and events */
EXPORT CUresult cuStreamCreate(CUstream *s, unsigned flags)
{
    NEED_CONTEXT;
    if (flags > 1) return INVALID_VALUE;
    struct fake_stream *stream = malloc(sizeof *stream);
    stream->magic = 0x57AE;
    stream->flags = flags;
    pthread_mutex_lock(&lock);
    live_streams++;
    pthread_mutex_unlock(&lock);
    *s = stream;
    return OK;
}

EXPORT CUresult cuStreamSynchronize(CUstream s) { NEED_CONTEXT; return stream_ok(s) ? OK : INVALID_HANDLE; }

EXPORT CUresult cuStreamDestroy_v2(CUstream s)
{
    NEED_CONTEXT;
    if (!s || s->magic != 0x57AE) return INVALID_HANDLE;
    s->magic = 0;
    free(s);
    pthread_mutex_lock(&lock);
    live_streams--;
    pthread_mutex_unlock(&lock);
    return OK;
}

EXPORT CUresult cuEventCreate(CUevent *e, unsigned flags)
{
    NEED_CONTEXT;
    (void)flags;
    struct fake_event *event = calloc(1, sizeof *event);
    event->magic = 0xE7;
    pthread_mutex_lock(&lock);
    live_events++;
    pthread_mutex_unlock(&lock);
    *e = event;
    return OK;
}

EXPORT CUresult cuEventRecord(CUevent e, CUstream s)
{
    NEED_CONTEXT;
    if (!e || e->magic != 0xE7 || !stream_ok(s)) return INVALID_HANDLE;
    e->recorded_ms = now_ms();
    return OK;
}

EXPORT CUresult cuEventSynchronize(CUevent e) { NEED_CONTEXT; return e && e->magic == 0xE7 ? OK : INVALID_HANDLE; }

EXPORT CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b)
{
    NEED_CONTEXT;
    if (!a || !b || a->magic != 0xE7 || b->magic != 0xE7) return INVALID_HANDLE;
    *ms = (float)(b->recorded_ms - a->recorded_ms);
    return OK;
}

EXPORT CUresult cuEventDestroy_v2(CUevent e)
{
    NEED_CONTEXT;
    if (!e || e->magic != 0xE7) return INVALID_HANDLE;
    e->magic = 0;
    free(e);
    pthread_mutex_lock(&lock);
    live_events--;
    pthread_mutex_unlock(&lock);
    return OK;
}
