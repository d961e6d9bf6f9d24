// Typed access to the pinned skiff maps.
#pragma once

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fd.h"
#include "common/ipv4.h"
#include "common/result.h"
#include "map_layout.h"
#include "pins.h"

namespace skiff::datapath {

// Calls f(key, value) for every entry of the map behind fd, one key at a
// time: two syscalls per entry, and a key deleted mid-walk restarts the
// walk at the first key. For maps without batch lookups.
template <typename K, typename V, typename F>
Status for_each_entry_by_key(int fd, const char* what, F&& f) {
    K cur{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        V v{};
        if (bpf_map_lookup_elem(fd, &next, &v) == 0) f(next, v);
        cur = next;
        prev = &cur;
    }
    if (errno != ENOENT) return Error::errno_(std::string("iterate ") + what);
    return ok();
}

// The kernel's "operation not supported" for maps without batch ops
// (ENOTSUPP, not in the UAPI headers).
inline constexpr int kErrNotSupp = 524;

// Calls f(key, value) for every entry of the map behind fd, a few hundred
// entries per syscall (BPF_MAP_LOOKUP_BATCH: a hash map's buckets are read
// whole, each under its lock, so no entry is seen twice; LPM tries and
// arrays resume from the last key). Falls back to the key-by-key walk for
// map types without batch lookups. Not for per-CPU maps. Entries that
// vanish mid-walk are skipped; what names the map in the error.
template <typename K, typename V, typename F>
Status for_each_entry(int fd, const char* what, F&& f) {
    uint32_t chunk = 512;
    std::vector<K> keys(chunk);
    std::vector<V> values(chunk);
    // The resume position: a bucket index for hash maps, a key for arrays.
    alignas(8) unsigned char in[sizeof(K) < 8 ? 8 : sizeof(K)] = {}, out[sizeof(in)] = {};
    bool first = true;
    int busy = 0;
    for (;;) {
        uint32_t count = chunk;
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        int r = bpf_map_lookup_batch(fd, first ? nullptr : in, out, keys.data(), values.data(), &count, &opts);
        int err = r ? errno : 0;
        if (err == EBUSY && count == 0 && ++busy <= 3) continue;  // a bucket lock held by a program on this CPU
        if (err && err != ENOENT) {
            if (first && (err == EINVAL || err == kErrNotSupp || err == EOPNOTSUPP))
                return for_each_entry_by_key<K, V>(fd, what, std::forward<F>(f));
            if (err == ENOSPC && chunk < (1u << 20)) {  // one bucket holds more than a chunk
                chunk *= 4;
                keys.resize(chunk);
                values.resize(chunk);
                continue;
            }
            errno = err;
            return Error::errno_(std::string("iterate ") + what);
        }
        for (uint32_t i = 0; i < count && i < chunk; ++i) f(keys[i], values[i]);
        if (err == ENOENT) return ok();
        std::memcpy(in, out, sizeof(in));
        first = false;
    }
}

// The value under key, nullopt when there is none.
template <typename V, typename K>
Result<std::optional<V>> lookup_entry(int fd, const K& key, const char* what) {
    V v{};
    if (bpf_map_lookup_elem(fd, &key, &v) == 0) return std::optional<V>(v);
    if (errno == ENOENT) return std::optional<V>();
    return Error::errno_(std::string("look up ") + what + " entry");
}

// Deletes key; an absent key is fine.
template <typename K>
Status delete_entry(int fd, const K& key, const char* what) {
    if (bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT)
        return Error::errno_(std::string("delete ") + what + " entry");
    return ok();
}

// A pinned map opened on first use (and kept open), for tables the agent
// holds before the datapath created them.
class LazyPinnedMap {
public:
    LazyPinnedMap(std::string pin_dir, std::string name) : pin_dir_(std::move(pin_dir)), name_(std::move(name)) {}
    Result<int> fd() {
        if (!fd_.valid()) {
            SKIFF_ASSIGN_OR_RETURN(fd_, open_pinned_map(pin_dir_, name_));
        }
        return fd_.get();
    }

private:
    std::string pin_dir_, name_;
    UniqueFd fd_;
};

// The endpoints map, and with it each local pod's slot in the pod sources
// array (from_pod's source check): written after the endpoint, cleared
// before it, so a slot never says more than the endpoint does. Without a
// pinned pod sources map (pinned by a build before it), endpoints alone.
class EndpointMap {
public:
    static Result<EndpointMap> open(const std::string& pin_dir);

    Status upsert(Ipv4 ip, const skiff_endpoint_info& info);
    Status remove(Ipv4 ip);  // ENOENT when absent
    Result<std::optional<skiff_endpoint_info>> lookup(Ipv4 ip);
    Result<std::vector<std::pair<Ipv4, skiff_endpoint_info>>> list();

private:
    EndpointMap(UniqueFd fd, UniqueFd sources) : fd_(std::move(fd)), sources_(std::move(sources)) {}
    Status clear_source(Ipv4 ip, const skiff_endpoint_info& info);
    Result<skiff_pod_source> read_source(uint32_t slot, Ipv4 ip);
    Status write_source(uint32_t slot, const skiff_pod_source& v, Ipv4 ip);
    UniqueFd fd_;
    UniqueFd sources_;  // invalid: no pod sources map pinned
};

class NodeMap {
public:
    static Result<NodeMap> open(const std::string& pin_dir);

    Status upsert(const Ipv4Prefix& cidr, const skiff_node_info& info);
    Status remove(const Ipv4Prefix& cidr);  // ENOENT when absent
    Result<std::vector<std::pair<Ipv4Prefix, skiff_node_info>>> list();

private:
    explicit NodeMap(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

struct MetricRow {
    uint32_t reason = 0;
    uint32_t dir = 0;
    uint64_t packets = 0;
    uint64_t bytes = 0;
};

class MetricsMap {
public:
    static Result<MetricsMap> open(const std::string& pin_dir);
    // Non-zero counters summed over CPUs.
    Result<std::vector<MetricRow>> read();

private:
    explicit MetricsMap(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

std::string_view reason_name(uint32_t reason);  // "fwd-local-pod", "drop-invalid-source", ...
std::string_view dir_name(uint32_t dir);        // "egress" / "ingress"
bool reason_is_drop(uint32_t reason);

}  // namespace skiff::datapath
