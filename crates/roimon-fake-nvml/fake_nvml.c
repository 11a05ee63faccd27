// A fake libnvidia-ml.so for tests: the subset of the NVML C ABI that roimon calls
// through nvml-wrapper 0.13, driven by plain files so tests need no GPU and no env vars.
//
// Configuration
//   At nvmlInit the library finds its own path with dladdr() and reads
//   `fake-nvml.conf` from the same directory. One GPU per line:
//     name,uuid,power_mw,has_energy_counter(0/1),util_gpu_percent,
//     mem_used_bytes,mem_total_bytes,temp_c,power_limit_mw
//   Blank lines and lines starting with '#' are ignored. A missing file makes
//   nvmlInit return NVML_ERROR_DRIVER_NOT_LOADED; a malformed one
//   NVML_ERROR_UNKNOWN (with a message on stderr).
//
// Control files (same directory, re-read on every call that needs them)
//   clock       decimal seconds used as "now"; absent: CLOCK_MONOTONIC.
//   lost-<i>    present: every call for GPU i returns NVML_ERROR_GPU_IS_LOST.
//   reset-<i>   a generation number; when it differs from the last one seen,
//               GPU i's energy counter restarts from 0 at that moment (a
//               driver reload). The value present at nvmlInit is taken as
//               the current generation (no reset).
//   fail-count  present: nvmlDeviceGetCount_v2 returns NVML_ERROR_UNKNOWN.
//   hang-<i>    present: every call for GPU i blocks until the file is
//               removed (a GPU fallen off the bus hanging the driver); the
//               library lock is held meanwhile, as NVML's own would be.
//   procs-<i>   processes on GPU i, one a line: pid,used_bytes,sm_util,kind
//               (sm_util a percent, or '-' for no utilisation sample; kind
//               'c' compute, 'g' graphics, 'cg' both; default 'c').
//               Absent: no process.
//   mig-<i>     MIG mode on for GPU i; the GPU instance slice count of each
//               MIG device, comma-separated (e.g. "4,3"). The processes of
//               MIG device m are in procs-<i>-<m> (same format); the
//               parent handle lists them all, with their instance id.
//   no-putil-<i> present: nvmlDeviceGetProcessUtilization on GPU i returns
//               NVML_ERROR_NOT_SUPPORTED.
//
// Process utilisation samples carry the time of the call (microseconds of
// the fake clock) and are returned when that is later than lastSeen.
//
// Energy counter (mJ): the driver is taken to have been loaded at clock 0
// with a counter of BASE_MJ, so energy = BASE_MJ + power_mw * now_s
// (mW x s = mJ); after a reset at time r it is power_mw * (now_s - r).
// Elapsed times are clamped at 0 so a clock set backwards never underflows.
//
// Each copy of the .so loaded from a different path is a separate instance
// (glibc keys loaded objects by path and by device/inode), so tests in one
// process can each have their own copy in their own directory.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef unsigned int nvmlReturn_t;

#define NVML_SUCCESS 0u
#define NVML_ERROR_UNINITIALIZED 1u
#define NVML_ERROR_INVALID_ARGUMENT 2u
#define NVML_ERROR_NOT_SUPPORTED 3u
#define NVML_ERROR_NOT_FOUND 6u
#define NVML_ERROR_INSUFFICIENT_SIZE 7u
#define NVML_ERROR_DRIVER_NOT_LOADED 9u
#define NVML_ERROR_GPU_IS_LOST 15u
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25u
#define NVML_ERROR_UNKNOWN 999u

#define NVML_TEMPERATURE_GPU 0u

#define MAX_GPUS 64
#define MAX_STR 96 /* NVML_DEVICE_NAME_V2_BUFFER_SIZE / NVML_DEVICE_UUID_V2_BUFFER_SIZE */
#define BASE_MJ 5.0e9 /* "driver loaded long ago": a reset is visibly backwards */
#define DRIVER_VERSION "550.54.15"

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

#define NVML_MEMORY_V2_VERSION ((unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))

struct fake_gpu {
    char name[MAX_STR];
    char uuid[MAX_STR];
    unsigned int power_mw;
    int has_energy;
    unsigned int util_gpu;
    unsigned long long mem_used;
    unsigned long long mem_total;
    unsigned int temp_c;
    unsigned int power_limit_mw;
    long long reset_gen;
    int was_reset;
    double reset_at;
};

typedef struct fake_gpu *nvmlDevice_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t; /* nvmlProcessInfo_v2_t, what the _v3 calls fill */

typedef struct {
    unsigned int pid;
    unsigned long long timeStamp;
    unsigned int smUtil;
    unsigned int memUtil;
    unsigned int encUtil;
    unsigned int decUtil;
} nvmlProcessUtilizationSample_t;

typedef struct {
    unsigned int multiprocessorCount;
    unsigned int sharedCopyEngineCount;
    unsigned int sharedDecoderCount;
    unsigned int sharedEncoderCount;
    unsigned int sharedJpegCount;
    unsigned int sharedOfaCount;
    unsigned int gpuInstanceSliceCount;
    unsigned int computeInstanceSliceCount;
    unsigned long long memorySizeMB;
} nvmlDeviceAttributes_t;

#define MAX_MIG 8
#define MAX_PROCS 64
#define NO_ID 0xffffffffu
#define KIND_COMPUTE 1
#define KIND_GRAPHICS 2

struct fake_proc {
    unsigned int pid;
    unsigned long long used;
    int sm; /* percent, -1: no sample */
    int kind;
    unsigned int mig; /* NO_ID: not in a MIG instance */
};

/* A MIG device handle: the parent GPU and the instance index. */
struct fake_mig {
    unsigned int parent;
    unsigned int index;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_gpu g_gpus[MAX_GPUS];
static unsigned int g_count;
static unsigned int g_refcount;
static char g_dir[PATH_MAX];
static struct fake_mig g_migs[MAX_GPUS][MAX_MIG];

/* ---- helpers (all called with g_lock held) ---------------------------------- */

/* Reads a control file into buf (NUL-terminated). Returns its length, or -1 if absent. */
static int read_control(const char *name, char *buf, size_t cap) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) n = 0;
    buf[n] = '\0';
    return (int)n;
}

static int control_exists(const char *name) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    return access(path, F_OK) == 0;
}

static double now_s(void) {
    char buf[64];
    if (read_control("clock", buf, sizeof buf) >= 0) {
        char *end;
        double v = strtod(buf, &end);
        if (end != buf) return v;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long reset_generation(unsigned int index) {
    char name[32], buf[64];
    snprintf(name, sizeof name, "reset-%u", index);
    if (read_control(name, buf, sizeof buf) < 0) return 0;
    return strtoll(buf, NULL, 10);
}

static int is_lost(unsigned int index) {
    char name[32];
    snprintf(name, sizeof name, "lost-%u", index);
    return control_exists(name);
}

/* The common prologue of every device call. */
static nvmlReturn_t enter_device(nvmlDevice_t device, struct fake_gpu **gpu) {
    if (g_refcount == 0) return NVML_ERROR_UNINITIALIZED;
    if (device < g_gpus || device >= g_gpus + g_count) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int index = (unsigned int)(device - g_gpus);
    char hang[32];
    snprintf(hang, sizeof hang, "hang-%u", index);
    while (control_exists(hang)) usleep(20000);
    if (is_lost(index)) return NVML_ERROR_GPU_IS_LOST;
    *gpu = device;
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(const char *src, char *dst, unsigned int length) {
    if (dst == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    size_t n = strlen(src);
    if (length < n + 1) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, n + 1);
    return NVML_SUCCESS;
}

static int parse_u64(const char *s, unsigned long long *out) {
    char *end;
    if (*s == '\0' || *s == '-') return 0;
    *out = strtoull(s, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\r') end++;
    return *end == '\0';
}

static int parse_u32(const char *s, unsigned int *out) {
    unsigned long long v;
    if (!parse_u64(s, &v) || v > 0xffffffffull) return 0;
    *out = (unsigned int)v;
    return 1;
}

static int set_dir_from_self(void) {
    Dl_info info;
    if (dladdr((void *)&set_dir_from_self, &info) == 0 || info.dli_fname == NULL) return 0;
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash == NULL) {
        strcpy(g_dir, ".");
    } else {
        size_t n = (size_t)(slash - info.dli_fname);
        if (n == 0) n = 1; /* library in "/" */
        if (n >= sizeof g_dir) return 0;
        memcpy(g_dir, info.dli_fname, n);
        g_dir[n] = '\0';
    }
    return 1;
}

static nvmlReturn_t load_config(void) {
    if (!set_dir_from_self()) {
        fprintf(stderr, "fake-nvml: dladdr could not find the library's own path\n");
        return NVML_ERROR_UNKNOWN;
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/fake-nvml.conf", g_dir);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        fprintf(stderr, "fake-nvml: cannot open %s\n", path);
        return NVML_ERROR_DRIVER_NOT_LOADED;
    }
    char line[1024];
    unsigned int count = 0, lineno = 0;
    nvmlReturn_t rc = NVML_SUCCESS;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\0' || *p == '#') continue;
        if (count == MAX_GPUS) {
            fprintf(stderr, "fake-nvml: %s:%u: more than %d GPUs\n", path, lineno, MAX_GPUS);
            rc = NVML_ERROR_UNKNOWN;
            break;
        }
        char *fields[9];
        int nf = 0;
        char *save = NULL;
        for (char *tok = strtok_r(line, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            if (nf == 9) {
                nf = 10;
                break;
            }
            fields[nf++] = tok;
        }
        struct fake_gpu *g = &g_gpus[count];
        memset(g, 0, sizeof *g);
        unsigned int has_energy = 0;
        if (nf != 9 || strlen(fields[0]) >= MAX_STR || strlen(fields[1]) >= MAX_STR ||
            !parse_u32(fields[2], &g->power_mw) || !parse_u32(fields[3], &has_energy) ||
            has_energy > 1 || !parse_u32(fields[4], &g->util_gpu) || g->util_gpu > 100 ||
            !parse_u64(fields[5], &g->mem_used) || !parse_u64(fields[6], &g->mem_total) ||
            g->mem_used > g->mem_total || !parse_u32(fields[7], &g->temp_c) ||
            !parse_u32(fields[8], &g->power_limit_mw)) {
            fprintf(stderr, "fake-nvml: %s:%u: malformed line (want 9 fields: "
                            "name,uuid,power_mw,has_energy_counter,util_gpu_percent,"
                            "mem_used_bytes,mem_total_bytes,temp_c,power_limit_mw)\n",
                    path, lineno);
            rc = NVML_ERROR_UNKNOWN;
            break;
        }
        strcpy(g->name, fields[0]);
        strcpy(g->uuid, fields[1]);
        g->has_energy = (int)has_energy;
        g->reset_gen = reset_generation(count);
        count++;
    }
    fclose(f);
    g_count = rc == NVML_SUCCESS ? count : 0;
    return rc;
}


/* Reads mig-<i>: the slice count of each MIG device. Returns the number of
 * devices (0: MIG off). */
static unsigned int mig_slices(unsigned int index, unsigned int slices[MAX_MIG]) {
    char name[32], buf[256];
    snprintf(name, sizeof name, "mig-%u", index);
    if (read_control(name, buf, sizeof buf) < 0) return 0;
    unsigned int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",\n", &save); tok != NULL && n < MAX_MIG;
         tok = strtok_r(NULL, ",\n", &save)) {
        unsigned int v;
        while (*tok == ' ') tok++;
        if (parse_u32(tok, &v) && v > 0) slices[n++] = v;
    }
    return n;
}

/* Appends the processes of control file `name` to out (at most MAX_PROCS). */
static unsigned int read_procs(const char *name, unsigned int mig, struct fake_proc *out, unsigned int have) {
    char buf[8192];
    if (read_control(name, buf, sizeof buf) < 0) return have;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line != NULL && have < MAX_PROCS;
         line = strtok_r(NULL, "\n", &save)) {
        while (*line == ' ' || *line == '\t') line++;
        if (*line == '\0' || *line == '#') continue;
        char *f[4] = {NULL, NULL, NULL, NULL};
        int nf = 0;
        char *s2 = NULL;
        for (char *tok = strtok_r(line, ",", &s2); tok != NULL && nf < 4; tok = strtok_r(NULL, ",", &s2))
            f[nf++] = tok;
        struct fake_proc p;
        if (nf < 3 || !parse_u32(f[0], &p.pid) || !parse_u64(f[1], &p.used)) {
            fprintf(stderr, "fake-nvml: %s: malformed process line (want pid,used_bytes,sm_util[,kind])\n", name);
            continue;
        }
        unsigned int sm;
        p.sm = parse_u32(f[2], &sm) && sm <= 100 ? (int)sm : -1;
        p.kind = KIND_COMPUTE;
        if (nf == 4) {
            p.kind = 0;
            if (strchr(f[3], 'c')) p.kind |= KIND_COMPUTE;
            if (strchr(f[3], 'g')) p.kind |= KIND_GRAPHICS;
        }
        p.mig = mig;
        out[have++] = p;
    }
    return have;
}

/* Every process of GPU `index` (MIG instance `mig`, or NO_ID for the whole GPU). */
static unsigned int gpu_procs(unsigned int index, unsigned int mig, struct fake_proc *out) {
    char name[48];
    unsigned int slices[MAX_MIG];
    unsigned int n_mig = mig_slices(index, slices);
    if (n_mig == 0) {
        if (mig != NO_ID) return 0;
        snprintf(name, sizeof name, "procs-%u", index);
        return read_procs(name, NO_ID, out, 0);
    }
    unsigned int have = 0;
    for (unsigned int m = 0; m < n_mig; m++) {
        if (mig != NO_ID && mig != m) continue;
        snprintf(name, sizeof name, "procs-%u-%u", index, m);
        have = read_procs(name, m, out, have);
    }
    return have;
}

static int is_mig_handle(const void *device) {
    return (const char *)device >= (const char *)g_migs &&
           (const char *)device < (const char *)g_migs + sizeof g_migs;
}

/* Resolves a GPU or MIG handle into the GPU index and the instance (NO_ID for a
 * GPU handle), waiting out hang-<i> and failing for lost-<i>. */
static nvmlReturn_t enter_any(const void *device, unsigned int *index, unsigned int *mig) {
    if (g_refcount == 0) return NVML_ERROR_UNINITIALIZED;
    if (is_mig_handle(device)) {
        const struct fake_mig *m = device;
        unsigned int slices[MAX_MIG];
        if (m->parent >= g_count || m->index >= mig_slices(m->parent, slices))
            return NVML_ERROR_INVALID_ARGUMENT;
        *index = m->parent;
        *mig = m->index;
    } else {
        struct fake_gpu *gpu;
        nvmlReturn_t rc = enter_device((nvmlDevice_t)device, &gpu);
        if (rc != NVML_SUCCESS) return rc;
        *index = (unsigned int)(gpu - g_gpus);
        *mig = NO_ID;
        return NVML_SUCCESS;
    }
    char hang[32];
    snprintf(hang, sizeof hang, "hang-%u", *index);
    while (control_exists(hang)) usleep(20000);
    if (is_lost(*index)) return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

static nvmlReturn_t running_processes(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos, int kind) {
    pthread_mutex_lock(&g_lock);
    unsigned int index, mig;
    nvmlReturn_t rc = enter_any(device, &index, &mig);
    if (rc == NVML_SUCCESS && count == NULL) rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS) {
        struct fake_proc procs[MAX_PROCS];
        unsigned int n = gpu_procs(index, mig, procs), k = 0;
        for (unsigned int i = 0; i < n; i++)
            if (procs[i].kind & kind) procs[k++] = procs[i];
        if (infos == NULL || *count < k) {
            rc = k == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
        } else {
            for (unsigned int i = 0; i < k; i++) {
                infos[i].pid = procs[i].pid;
                infos[i].usedGpuMemory = procs[i].used;
                infos[i].gpuInstanceId = procs[i].mig;
                infos[i].computeInstanceId = procs[i].mig == NO_ID ? NO_ID : 0;
            }
        }
        *count = k;
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

/* ---- the NVML ABI ----------------------------------------------------------- */

nvmlReturn_t nvmlInit_v2(void) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = NVML_SUCCESS;
    if (g_refcount == 0) rc = load_config();
    if (rc == NVML_SUCCESS) g_refcount++;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return nvmlInit_v2();
}

nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = NVML_SUCCESS;
    if (g_refcount == 0)
        rc = NVML_ERROR_UNINITIALIZED;
    else
        g_refcount--;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = g_refcount == 0 ? NVML_ERROR_UNINITIALIZED : copy_string(DRIVER_VERSION, version, length);
    pthread_mutex_unlock(&g_lock);
    return rc;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = NVML_SUCCESS;
    if (g_refcount == 0)
        rc = NVML_ERROR_UNINITIALIZED;
    else if (count == NULL)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (control_exists("fail-count"))
        rc = NVML_ERROR_UNKNOWN;
    else
        *count = g_count;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t rc = NVML_SUCCESS;
    if (g_refcount == 0)
        rc = NVML_ERROR_UNINITIALIZED;
    else if (device == NULL || index >= g_count)
        rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (is_lost(index))
        rc = NVML_ERROR_GPU_IS_LOST;
    else
        *device = &g_gpus[index];
    pthread_mutex_unlock(&g_lock);
    return rc;
}

/* Device calls share one shape: lock, validate the handle, check lost, then the body
 * (the variadic part, which may set rc), unlock. */
#define DEVICE_CALL(device, out, ...)                                   \
    do {                                                                 \
        struct fake_gpu *gpu = NULL;                                     \
        pthread_mutex_lock(&g_lock);                                     \
        nvmlReturn_t rc = enter_device((device), &gpu);                  \
        if (rc == NVML_SUCCESS && (out) == NULL) rc = NVML_ERROR_INVALID_ARGUMENT; \
        if (rc == NVML_SUCCESS) { __VA_ARGS__; }                            \
        pthread_mutex_unlock(&g_lock);                                   \
        return rc;                                                       \
    } while (0)

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    DEVICE_CALL(device, name, rc = copy_string(gpu->name, name, length));
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    DEVICE_CALL(device, uuid, rc = copy_string(gpu->uuid, uuid, length));
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    DEVICE_CALL(device, power, *power = gpu->power_mw);
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
    DEVICE_CALL(device, energy, {
        if (!gpu->has_energy) {
            rc = NVML_ERROR_NOT_SUPPORTED;
        } else {
            double t = now_s();
            long long gen = reset_generation((unsigned int)(gpu - g_gpus));
            if (gen != gpu->reset_gen) {
                gpu->reset_gen = gen;
                gpu->was_reset = 1;
                gpu->reset_at = t;
            }
            double elapsed = gpu->was_reset ? t - gpu->reset_at : t;
            if (elapsed < 0) elapsed = 0;
            double mj = (gpu->was_reset ? 0.0 : BASE_MJ) + (double)gpu->power_mw * elapsed;
            *energy = (unsigned long long)(mj + 0.5);
        }
    });
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    DEVICE_CALL(device, utilization, {
        utilization->gpu = gpu->util_gpu;
        utilization->memory =
            gpu->mem_total == 0 ? 0 : (unsigned int)(gpu->mem_used * 100 / gpu->mem_total);
    });
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    DEVICE_CALL(device, memory, {
        memory->total = gpu->mem_total;
        memory->used = gpu->mem_used;
        memory->free = gpu->mem_total - gpu->mem_used;
    });
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    DEVICE_CALL(device, memory, {
        if (memory->version != NVML_MEMORY_V2_VERSION) {
            rc = NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        } else {
            memory->total = gpu->mem_total;
            memory->reserved = 0;
            memory->used = gpu->mem_used;
            memory->free = gpu->mem_total - gpu->mem_used;
        }
    });
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, unsigned int sensorType, unsigned int *temp) {
    DEVICE_CALL(device, temp, {
        if (sensorType != NVML_TEMPERATURE_GPU)
            rc = NVML_ERROR_INVALID_ARGUMENT;
        else
            *temp = gpu->temp_c;
    });
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    DEVICE_CALL(device, limit, *limit = gpu->power_limit_mw);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos) {
    return running_processes(device, count, infos, KIND_COMPUTE);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos) {
    return running_processes(device, count, infos, KIND_GRAPHICS);
}

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *samples,
                                             unsigned int *count, unsigned long long lastSeen) {
    pthread_mutex_lock(&g_lock);
    unsigned int index, mig;
    nvmlReturn_t rc = enter_any(device, &index, &mig);
    if (rc == NVML_SUCCESS && count == NULL) rc = NVML_ERROR_INVALID_ARGUMENT;
    char name[32];
    if (rc == NVML_SUCCESS) {
        snprintf(name, sizeof name, "no-putil-%u", index);
        /* As on real parts, no per-process samples on a MIG device. */
        if (mig != NO_ID || control_exists(name)) rc = NVML_ERROR_NOT_SUPPORTED;
    }
    if (rc == NVML_SUCCESS) {
        struct fake_proc procs[MAX_PROCS];
        unsigned int n = gpu_procs(index, NO_ID, procs), k = 0;
        unsigned long long ts = (unsigned long long)(now_s() * 1e6);
        if (ts > lastSeen)
            for (unsigned int i = 0; i < n; i++)
                if (procs[i].sm >= 0) procs[k++] = procs[i];
        if (samples == NULL || *count < k) {
            rc = k == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
        } else {
            for (unsigned int i = 0; i < k; i++) {
                samples[i].pid = procs[i].pid;
                samples[i].timeStamp = ts;
                samples[i].smUtil = (unsigned int)procs[i].sm;
                samples[i].memUtil = 0;
                samples[i].encUtil = 0;
                samples[i].decUtil = 0;
            }
        }
        *count = k;
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    DEVICE_CALL(device, current, {
        if (pending == NULL) {
            rc = NVML_ERROR_INVALID_ARGUMENT;
        } else {
            unsigned int slices[MAX_MIG];
            *current = mig_slices((unsigned int)(gpu - g_gpus), slices) > 0;
            *pending = *current;
        }
    });
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count) {
    DEVICE_CALL(device, count, {
        unsigned int slices[MAX_MIG];
        *count = mig_slices((unsigned int)(gpu - g_gpus), slices) > 0 ? 7 : 0;
    });
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, nvmlDevice_t *mig) {
    DEVICE_CALL(device, mig, {
        unsigned int slices[MAX_MIG];
        unsigned int g = (unsigned int)(gpu - g_gpus);
        if (index >= mig_slices(g, slices)) {
            rc = NVML_ERROR_NOT_FOUND;
        } else {
            g_migs[g][index].parent = g;
            g_migs[g][index].index = index;
            *mig = (nvmlDevice_t)(void *)&g_migs[g][index];
        }
    });
}

nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t device, nvmlDeviceAttributes_t *attributes) {
    pthread_mutex_lock(&g_lock);
    unsigned int index, mig;
    nvmlReturn_t rc = enter_any(device, &index, &mig);
    if (rc == NVML_SUCCESS && attributes == NULL) rc = NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS) {
        unsigned int slices[MAX_MIG];
        unsigned int n = mig_slices(index, slices);
        memset(attributes, 0, sizeof *attributes);
        unsigned int sl = mig == NO_ID ? 7 : (mig < n ? slices[mig] : 0);
        attributes->gpuInstanceSliceCount = sl;
        attributes->computeInstanceSliceCount = sl;
        attributes->multiprocessorCount = 16 * sl;
        attributes->memorySizeMB = (g_gpus[index].mem_total >> 20) * sl / 8;
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}
