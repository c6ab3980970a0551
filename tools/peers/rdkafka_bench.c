// rdkafka_bench: a librdkafka producer and consumer for `tools/bench produce`.
// Not a test: it prints what it measured, one `result ...` line per run.
//
//   rdkafka_bench create  -b HOST:PORT -t TOPIC -p PARTITIONS [-R REPLICAS] [-X topic.config=value]...
//   rdkafka_bench produce -b HOST:PORT -t TOPIC -f VALUES -n COUNT [-r RATE] [-w WARMUP]
//                         [-l LINGER_MS] [-s BATCH_BYTES] [-z lz4|none] [-T SECONDS] [-L LOG] [-X key=value]...
//   rdkafka_bench consume -b HOST:PORT -t TOPIC -n COUNT [-p PARTITIONS] [-T SECONDS] [-X key=value]...
//
// VALUES is a file of values, one per line (`keel bench sample`); messages cycle over them.
// produce without -r sends as fast as librdkafka accepts (acks=all) and reports msg/s and
// MB/s of values from the first send to the last delivery report. With -r it sends RATE
// msg/s on a fixed schedule and records, per message, the time from the send call to its
// delivery report (acks=all: the broker's answer) in a log-linear histogram; the first
// WARMUP messages (default: one second's worth) are not counted.
// -L LOG writes one line per message as its delivery report arrives, for `tools/bench failover`:
// `index send_ns report_ns partition offset error` (CLOCK_MONOTONIC nanoseconds, the clock every
// process on the machine shares; error 0 on success, else librdkafka's error code). With -L a
// failed delivery is logged and counted, and SIGTERM or SIGINT stops the sender cleanly.
// consume assigns every partition from the beginning and reports msg/s and MB/s of values
// from assign() until COUNT messages have arrived. Every run stops after -T seconds.
// -X sets a librdkafka property (produce, consume) or a topic config (create).
//
// Build: cc -O2 -o rdkafka_bench rdkafka_bench.c -lrdkafka -lpthread
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "rdkafka_bench: %s: %s\n", what, detail);
    exit(1);
}

// ---- log-linear histogram of microseconds: exact below 2048 us, then 1024 buckets per
// power of two (relative error < 0.1 %), up to 2^32 us.
#define SUB_BITS 11
#define SUB (1u << SUB_BITS)
#define HALF (SUB / 2)
#define MAGS 22
#define BUCKETS (SUB + MAGS * HALF)
typedef struct {
    uint64_t counts[BUCKETS];
    uint64_t total;
    uint64_t max;
} histogram;

static size_t hist_index(uint64_t us) {
    if (us < SUB) return (size_t)us;
    int mag = 63 - __builtin_clzll(us) - (SUB_BITS - 1);  // us >> mag is in [HALF, SUB)
    if (mag > MAGS) return BUCKETS - 1;
    return SUB + (size_t)(mag - 1) * HALF + (size_t)((us >> mag) - HALF);
}

static uint64_t hist_value(size_t index) {  // the bucket's lower edge
    if (index < SUB) return index;
    size_t mag = (index - SUB) / HALF + 1;
    return ((index - SUB) % HALF + HALF) << mag;
}

static void hist_record(histogram *h, uint64_t us) {
    h->counts[hist_index(us)]++;
    h->total++;
    if (us > h->max) h->max = us;
}

static uint64_t hist_percentile(const histogram *h, double p) {
    uint64_t want = (uint64_t)((double)h->total * p / 100.0 + 0.999999);
    if (want == 0) want = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= want) return hist_value(i);
    }
    return h->max;
}

// ---- values
static char **values;
static size_t *value_lengths;
static size_t value_count;

static void load_values(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path, strerror(errno));
    size_t cap = 1024;
    values = malloc(cap * sizeof(char *));
    value_lengths = malloc(cap * sizeof(size_t));
    char *line = NULL;
    size_t n = 0;
    ssize_t len;
    while ((len = getline(&line, &n, f)) > 0 && value_count < 65536) {
        if (line[len - 1] == '\n') len--;
        if (value_count == cap) {
            cap *= 2;
            values = realloc(values, cap * sizeof(char *));
            value_lengths = realloc(value_lengths, cap * sizeof(size_t));
        }
        values[value_count] = malloc((size_t)len);
        memcpy(values[value_count], line, (size_t)len);
        value_lengths[value_count] = (size_t)len;
        value_count++;
    }
    free(line);
    fclose(f);
    if (value_count == 0) die(path, "no values");
}

// ---- options
static const char *brokers = "127.0.0.1:9092", *topic = "bench", *values_path = NULL, *codec = "lz4";
static long count = 100000, rate = 0, warmup = -1, linger_ms = 5, batch_bytes = 65536, partitions = 1, replicas = 1;
static const char *log_path = NULL;
static FILE *log_file;
static double time_limit = 60;
static const char *extra[32];  // -X key=value, applied last
static int extra_count;

static void set(rd_kafka_conf_t *conf, const char *key, const char *value) {
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK) die(key, err);
}

static void set_extra(rd_kafka_conf_t *conf) {
    for (int i = 0; i < extra_count; i++) {
        char key[256];
        const char *eq = strchr(extra[i], '=');
        if (!eq || eq - extra[i] >= (long)sizeof key) die("-X", "expects key=value");
        memcpy(key, extra[i], (size_t)(eq - extra[i]));
        key[eq - extra[i]] = 0;
        set(conf, key, eq + 1);
    }
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    static int all = -1;
    if (all < 0) all = getenv("RDKAFKA_BENCH_DEBUG") != NULL;
    if (level <= 4 || all) fprintf(stderr, "%.3f rdkafka %s: %s\n", now_ns() / 1e9, fac, buf);
}

// ---- produce
static histogram *latency;
static atomic_long delivered, failed;
static uint64_t *sent_at;  // per message, ns; read by the delivery callback
static _Atomic uint64_t last_delivery_ns;
static atomic_int stop_poller, stop_sender;

static void on_stop_signal(int signal) {
    (void)signal;
    atomic_store(&stop_sender, 1);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    (void)opaque;
    uint64_t t = now_ns();
    if (log_file) {
        long index = (long)(intptr_t)msg->_private;
        fprintf(log_file, "%ld %llu %llu %d %lld %d\n", index, (unsigned long long)sent_at[index],
            (unsigned long long)t, (int)msg->partition, (long long)msg->offset, (int)msg->err);
    }
    if (msg->err) {
        if (atomic_fetch_add(&failed, 1) < 5)
            fprintf(stderr, "rdkafka_bench: delivery failed: %s\n", rd_kafka_err2str(msg->err));
        return;
    }
    long index = (long)(intptr_t)msg->_private;
    if (rate > 0 && index >= warmup) hist_record(latency, (t - sent_at[index]) / 1000);
    atomic_fetch_add(&delivered, 1);
    atomic_store(&last_delivery_ns, t);
}

// Delivery reports are served on their own thread, so that a fixed-rate sender asleep until
// its next message never delays them.
static void *poller(void *arg) {
    rd_kafka_t *rk = arg;
    while (!atomic_load(&stop_poller)) rd_kafka_poll(rk, 1);
    return NULL;
}

static int produce(void) {
    if (!values_path) die("produce", "-f VALUES is required");
    load_values(values_path);
    if (warmup < 0) warmup = rate > 0 ? rate : 0;
    char buf[64], err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", brokers);
    set(conf, "acks", "all");
    set(conf, "compression.type", codec);
    snprintf(buf, sizeof buf, "%ld", linger_ms);
    set(conf, "linger.ms", buf);
    snprintf(buf, sizeof buf, "%ld", batch_bytes);
    set(conf, "batch.size", buf);
    set(conf, "batch.num.messages", "100000");
    set(conf, "queue.buffering.max.messages", "1000000");
    set(conf, "queue.buffering.max.kbytes", "1048576");
    set(conf, "message.timeout.ms", "60000");
    set_extra(conf);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("rd_kafka_new", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);

    // Connect and learn the topic's metadata before the clock starts.
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (e) die("metadata", rd_kafka_err2str(e));
    rd_kafka_metadata_destroy(md);

    latency = calloc(1, sizeof *latency);
    sent_at = calloc((size_t)count, sizeof *sent_at);
    if (log_path) {
        log_file = fopen(log_path, "w");
        if (!log_file) die(log_path, strerror(errno));
        setvbuf(log_file, NULL, _IOLBF, 0);  // the failover harness reads the log while it grows
        signal(SIGTERM, on_stop_signal);
        signal(SIGINT, on_stop_signal);
    }
    pthread_t poll_thread;
    pthread_create(&poll_thread, NULL, poller, rk);

    uint64_t start = now_ns(), deadline = start + (uint64_t)(time_limit * 1e9);
    long sent = 0;
    while (sent < count && now_ns() < deadline && !atomic_load(&stop_sender)) {
        if (rate > 0) {
            uint64_t due = start + (uint64_t)((double)sent * 1e9 / (double)rate);
            if (now_ns() < due) {
                struct timespec ts = {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            }
        }
        size_t v = (size_t)sent % value_count;
        sent_at[sent] = now_ns();
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, values[v], value_lengths[v], NULL, 0,
                (void *)(intptr_t)sent) == -1) {
            rd_kafka_resp_err_t pe = rd_kafka_last_error();
            if (pe == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                usleep(200);
                continue;
            }
            die("produce", rd_kafka_err2str(pe));
        }
        sent++;
    }
    uint64_t sent_done = now_ns();
    while (atomic_load(&delivered) + atomic_load(&failed) < sent && now_ns() < deadline) usleep(100);
    if (atomic_load(&stop_sender)) count = sent;  // stopped on purpose: what was sent is the run
    atomic_store(&stop_poller, 1);
    pthread_join(poll_thread, NULL);
    uint64_t end = atomic_load(&last_delivery_ns);
    if (end < sent_done) end = sent_done;

    long ok = atomic_load(&delivered);
    double seconds = (double)(end - start) / 1e9;
    double bytes = 0;
    for (long i = 0; i < ok; i++) bytes += (double)value_lengths[(size_t)i % value_count];
    if (rate == 0) {
        printf("result produce msgs=%ld failed=%ld seconds=%.3f msg_per_s=%.0f mb_per_s=%.1f linger_ms=%ld "
               "batch_bytes=%ld codec=%s\n",
            ok, atomic_load(&failed), seconds, ok / seconds, bytes / seconds / 1e6, linger_ms, batch_bytes, codec);
    } else {
        printf("result latency rate=%ld msgs=%ld counted=%lu failed=%ld seconds=%.3f achieved_msg_per_s=%.0f "
               "p50_ms=%.3f p99_ms=%.3f p99_9_ms=%.3f max_ms=%.3f linger_ms=%ld codec=%s\n",
            rate, ok, (unsigned long)latency->total, atomic_load(&failed), seconds, ok / seconds,
            hist_percentile(latency, 50) / 1e3, hist_percentile(latency, 99) / 1e3,
            hist_percentile(latency, 99.9) / 1e3, latency->max / 1e3, linger_ms, codec);
    }
    fflush(stdout);
    rd_kafka_flush(rk, 1000);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    if (log_file) fclose(log_file);
    return ok == sent && sent == count ? 0 : 1;
}

// ---- consume
static int consume(void) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", brokers);
    set(conf, "group.id", "rdkafka-bench");  // required by the API; only assign() is used
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.partition.eof", "false");
    set_extra(conf);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) die("rd_kafka_new", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(list, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;

    // Connect and learn the partitions' leader before the clock starts: assigned before
    // that, librdkafka waits 500 ms (its offset query timer) before it starts fetching.
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (e) die("metadata", rd_kafka_err2str(e));
    rd_kafka_metadata_destroy(md);

    uint64_t start = now_ns(), deadline = start + (uint64_t)(time_limit * 1e9);
    e = rd_kafka_assign(rk, list);
    if (e) die("assign", rd_kafka_err2str(e));
    // The batch API hands over up to 10,000 messages per call (as confluent-kafka's
    // consume(num_messages) does), so the application thread is not the bottleneck.
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(rk);
    static rd_kafka_message_t *batch[10000];
    long got = 0;
    double bytes = 0;
    while (got < count && now_ns() < deadline) {
        ssize_t n = rd_kafka_consume_batch_queue(queue, 100, batch, 10000);
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = batch[i];
            if (m->err) {
                fprintf(stderr, "rdkafka_bench: consume: %s\n", rd_kafka_message_errstr(m));
            } else {
                got++;
                bytes += (double)m->len;
            }
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_queue_destroy(queue);
    rd_kafka_topic_destroy(rkt);
    double seconds = (double)(now_ns() - start) / 1e9;
    printf("result consume msgs=%ld seconds=%.3f msg_per_s=%.0f mb_per_s=%.1f partitions=%ld\n", got, seconds,
        got / seconds, bytes / seconds / 1e6, partitions);
    fflush(stdout);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got == count ? 0 : 1;
}

// ---- create
static int create(void) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", brokers);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("rd_kafka_new", err);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, (int)partitions, (int)replicas, err, sizeof err);
    if (!nt) die("NewTopic", err);
    for (int i = 0; i < extra_count; i++) {  // -X: topic configs here
        char key[256];
        const char *eq = strchr(extra[i], '=');
        if (!eq || eq - extra[i] >= (long)sizeof key) die("-X", "expects key=value");
        memcpy(key, extra[i], (size_t)(eq - extra[i]));
        key[eq - extra[i]] = 0;
        if (rd_kafka_NewTopic_set_config(nt, key, eq + 1)) die("-X", extra[i]);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    if (!ev) die("create", "no answer in 15 s");
    if (rd_kafka_event_error(ev)) die("create", rd_kafka_event_error_string(ev));
    size_t n;
    const rd_kafka_topic_result_t **results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; i++)
        if (rd_kafka_topic_result_error(results[i])) die("create", rd_kafka_topic_result_error_string(results[i]));
    rd_kafka_event_destroy(ev);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    printf("created %s with %ld partitions of %ld replicas\n", topic, partitions, replicas);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: rdkafka_bench create|produce|consume [options]; see the top of rdkafka_bench.c\n");
        return 2;
    }
    const char *mode = argv[1];
    int c;
    optind = 2;
    while ((c = getopt(argc, argv, "b:t:f:n:r:w:l:s:z:p:R:T:L:X:")) != -1) {
        switch (c) {
        case 'b': brokers = optarg; break;
        case 't': topic = optarg; break;
        case 'f': values_path = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'r': rate = atol(optarg); break;
        case 'w': warmup = atol(optarg); break;
        case 'l': linger_ms = atol(optarg); break;
        case 's': batch_bytes = atol(optarg); break;
        case 'z': codec = optarg; break;
        case 'p': partitions = atol(optarg); break;
        case 'R': replicas = atol(optarg); break;
        case 'L': log_path = optarg; break;
        case 'T': time_limit = atof(optarg); break;
        case 'X':
            if (extra_count == 32) die("-X", "at most 32");
            extra[extra_count++] = optarg;
            break;
        default: return 2;
        }
    }
    if (count <= 0) die("-n", "must be positive");
    if (!strcmp(mode, "produce")) return produce();
    if (!strcmp(mode, "consume")) return consume();
    if (!strcmp(mode, "create")) return create();
    fprintf(stderr, "rdkafka_bench: unknown mode %s\n", mode);
    return 2;
}
