// jetstream_bench: NATS JetStream publisher and consumers for `tools/bench produce`, the peer
// of rdkafka_bench.c. Not a test: it prints what it measured, one `result ...` line per run.
//
//	jetstream_bench -url nats://127.0.0.1:4222 -stream S -mode produce -f VALUES -n COUNT [-rate R] [-pending P]
//	jetstream_bench -url ... -stream S -mode consume-ordered|consume-pull -n COUNT
//	    [-replicas R] [-servers n1=nats://...,n2=...] [-streams K]
//
// The stream (subject = its name, file storage, -replicas replicas, default one) is created by
// the first run that needs it; on a cluster, creation is retried until JetStream's meta group
// has a leader, and the run waits until the stream has one. With -servers (server name = URL of
// every server of the cluster) the client then connects to the server that leads the stream,
// as a Kafka client talks to the partition's leader: JetStream's best case, no route hop.
// produce -streams K publishes round-robin to K streams S, S_1 ... S_{K-1} (each its own Raft
// group, as Kafka partitions are), from one connection to -url. produce without -rate publishes asynchronously with at most -pending
// unacknowledged messages and reports msg/s and MB/s from the first publish to the last
// ack. With -rate it publishes R msg/s on a fixed schedule and records, per message, the
// time from the publish call to its ack in a histogram; the first -warmup messages (default
// one second's worth) are not counted. consume-ordered uses an ordered push consumer,
// consume-pull a pull consumer fetching -fetch messages at a time; both from the start of
// the stream until COUNT messages have arrived. Every run stops after -timeout.
//
// Built in GOPATH mode against Debian's golang-github-nats-io-go-nats-dev (no network):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o jetstream_bench jetstream_bench.go
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "jetstream_bench: "+format+"\n", args...)
	os.Exit(1)
}

// histogram: microseconds in log-linear buckets (exact below 2048 us, then < 0.1 % error).
type histogram struct {
	mu     sync.Mutex
	counts map[uint64]uint64
	total  uint64
	max    uint64
}

func bucket(us uint64) uint64 {
	if us < 2048 {
		return us
	}
	shift := uint(63-leadingZeros(us)) - 10
	return (us >> shift) << shift
}

func leadingZeros(x uint64) int {
	n := 0
	for i := 63; i >= 0 && x&(1<<uint(i)) == 0; i-- {
		n++
	}
	return n
}

func (h *histogram) record(d time.Duration) {
	us := uint64(d / time.Microsecond)
	h.mu.Lock()
	h.counts[bucket(us)]++
	h.total++
	if us > h.max {
		h.max = us
	}
	h.mu.Unlock()
}

func (h *histogram) percentile(p float64) float64 {
	keys := make([]uint64, 0, len(h.counts))
	for k := range h.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	want := uint64(math.Ceil(float64(h.total) * p / 100))
	if want == 0 {
		want = 1
	}
	var seen uint64
	for _, k := range keys {
		seen += h.counts[k]
		if seen >= want {
			return float64(k) / 1000
		}
	}
	return float64(h.max) / 1000
}

func loadValues(path string) [][]byte {
	f, err := os.Open(path)
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	var values [][]byte
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() && len(values) < 65536 {
		values = append(values, append([]byte(nil), scanner.Bytes()...))
	}
	if len(values) == 0 {
		fail("%s: no values", path)
	}
	return values
}

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "server URL")
	stream := flag.String("stream", "BENCH", "stream name (also its subject)")
	mode := flag.String("mode", "produce", "produce, consume-ordered or consume-pull")
	path := flag.String("f", "", "values, one per line")
	count := flag.Int("n", 100000, "messages")
	rate := flag.Int("rate", 0, "fixed rate in msg/s (0: as fast as acks allow)")
	warmup := flag.Int("warmup", -1, "messages not counted in latency (default: one second's worth)")
	pending := flag.Int("pending", 4000, "async publish: most unacknowledged messages")
	fetch := flag.Int("fetch", 1000, "pull consumer: messages per fetch")
	timeout := flag.Duration("timeout", 60*time.Second, "stop after this long")
	replicas := flag.Int("replicas", 1, "replicas of a stream this run creates")
	servers := flag.String("servers", "", "name=URL of every server: connect to the stream's leader")
	streams := flag.Int("streams", 1, "produce: publish round-robin to this many streams")
	flag.Parse()
	deadline := time.Now().Add(*timeout)

	nc, err := nats.Connect(*url)
	if err != nil {
		fail("connect: %v", err)
	}
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(*pending))
	if err != nil {
		fail("jetstream: %v", err)
	}
	names := []string{*stream}
	for i := 1; i < *streams; i++ {
		names = append(names, fmt.Sprintf("%s_%d", *stream, i))
	}
	leader := ""
	for _, name := range names {
		leader = ensureStream(js, name, *replicas, deadline)
	}
	if *servers != "" && *streams == 1 {
		for _, entry := range strings.Split(*servers, ",") {
			if server, address, ok := strings.Cut(entry, "="); ok && server == leader && address != *url {
				nc.Close()
				if nc, err = nats.Connect(address); err != nil {
					fail("connect to the stream leader %s: %v", address, err)
				}
				if js, err = nc.JetStream(nats.PublishAsyncMaxPending(*pending)); err != nil {
					fail("jetstream: %v", err)
				}
			}
		}
	}
	defer nc.Close()

	switch *mode {
	case "produce":
		values := loadValues(*path)
		if *warmup < 0 {
			*warmup = *rate
		}
		h := &histogram{counts: map[uint64]uint64{}}
		var acked, failed int64
		var lastAck atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		sent := 0
		for ; sent < *count && time.Now().Before(deadline); sent++ {
			if *rate > 0 {
				due := start.Add(time.Duration(float64(sent) * 1e9 / float64(*rate)))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
			}
			t0 := time.Now()
			f, err := js.PublishAsync(names[sent%len(names)], values[sent%len(values)])
			// With -pending unacknowledged, PublishAsync waits up to 200 ms for an ack and then gives up
			// ("stalled"); a stream of 3 replicas can take longer under load: wait again, as a steady
			// producer would.
			for err != nil && strings.Contains(err.Error(), "stalled") && time.Now().Before(deadline) {
				f, err = js.PublishAsync(names[sent%len(names)], values[sent%len(values)])
			}
			if err != nil {
				fail("publish: %v", err)
			}
			wg.Add(1)
			go func(index int, t0 time.Time, f nats.PubAckFuture) {
				defer wg.Done()
				select {
				case <-f.Ok():
					now := time.Now()
					if *rate > 0 && index >= *warmup {
						h.record(now.Sub(t0))
					}
					atomic.AddInt64(&acked, 1)
					for {
						last := lastAck.Load()
						if now.UnixNano() <= last || lastAck.CompareAndSwap(last, now.UnixNano()) {
							break
						}
					}
				case err := <-f.Err():
					if atomic.AddInt64(&failed, 1) <= 5 {
						fmt.Fprintf(os.Stderr, "jetstream_bench: publish failed: %v\n", err)
					}
				}
			}(sent, t0, f)
		}
		wg.Wait()
		seconds := time.Duration(lastAck.Load() - start.UnixNano()).Seconds()
		var bytes float64
		for i := 0; i < int(acked); i++ {
			bytes += float64(len(values[i%len(values)]))
		}
		if *rate == 0 {
			fmt.Printf("result produce msgs=%d failed=%d seconds=%.3f msg_per_s=%.0f mb_per_s=%.1f pending=%d\n",
				acked, failed, seconds, float64(acked)/seconds, bytes/seconds/1e6, *pending)
		} else {
			fmt.Printf("result latency rate=%d msgs=%d counted=%d failed=%d seconds=%.3f achieved_msg_per_s=%.0f "+
				"p50_ms=%.3f p99_ms=%.3f p99_9_ms=%.3f max_ms=%.3f\n",
				*rate, acked, h.total, failed, seconds, float64(acked)/seconds,
				h.percentile(50), h.percentile(99), h.percentile(99.9), float64(h.max)/1000)
		}
		if int(acked) != *count {
			os.Exit(1)
		}

	case "consume-ordered", "consume-pull":
		got := 0
		var bytes float64
		start := time.Now()
		if *mode == "consume-ordered" {
			done := make(chan struct{})
			var mu sync.Mutex
			sub, err := js.Subscribe(*stream, func(m *nats.Msg) {
				mu.Lock()
				got++
				bytes += float64(len(m.Data))
				if got == *count {
					close(done)
				}
				mu.Unlock()
			}, nats.OrderedConsumer(), nats.DeliverAll())
			if err != nil {
				fail("subscribe: %v", err)
			}
			select {
			case <-done:
			case <-time.After(time.Until(deadline)):
			}
			sub.Unsubscribe()
			mu.Lock()
			defer mu.Unlock()
		} else {
			sub, err := js.PullSubscribe(*stream, "", nats.DeliverAll(), nats.AckAll())
			if err != nil {
				fail("pull subscribe: %v", err)
			}
			for got < *count && time.Now().Before(deadline) {
				want := *fetch
				if *count-got < want {
					want = *count - got
				}
				msgs, err := sub.Fetch(want, nats.MaxWait(5*time.Second))
				if err != nil && len(msgs) == 0 {
					fmt.Fprintf(os.Stderr, "jetstream_bench: fetch: %v\n", err)
					continue
				}
				for _, m := range msgs {
					got++
					bytes += float64(len(m.Data))
				}
				msgs[len(msgs)-1].Ack()
			}
			sub.Unsubscribe()
		}
		seconds := time.Since(start).Seconds()
		fmt.Printf("result consume msgs=%d seconds=%.3f msg_per_s=%.0f mb_per_s=%.1f mode=%s\n",
			got, seconds, float64(got)/seconds, bytes/seconds/1e6, *mode)
		if got != *count {
			os.Exit(1)
		}

	default:
		fail("unknown -mode %s", *mode)
	}
}

// ensureStream creates the stream unless it exists, retrying while the cluster has no JetStream
// meta leader yet, and waits until the stream has a leader; it returns the leader's server name
// ("" for a single server).
func ensureStream(js nats.JetStreamContext, name string, replicas int, deadline time.Time) string {
	for {
		info, err := js.StreamInfo(name)
		if err != nil {
			info, err = js.AddStream(&nats.StreamConfig{
				Name: name, Subjects: []string{name}, Storage: nats.FileStorage, Replicas: replicas,
			})
		}
		if err == nil && (replicas == 1 || (info.Cluster != nil && info.Cluster.Leader != "")) {
			if info.Cluster != nil {
				return info.Cluster.Leader
			}
			return ""
		}
		if time.Now().After(deadline) {
			fail("stream %s: no leader before the timeout (last error: %v)", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
