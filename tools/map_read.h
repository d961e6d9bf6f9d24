// Reading maps pinned in skiffctl's pin dir: every entry of one map as raw
// bytes (one value per CPU for per-CPU maps), or as skiff's key and value
// structs. A missing map's error names the maps that are pinned.
#pragma once

#include <bpf/bpf.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cli.h"

namespace skiff::ctl {

using Bytes = std::vector<uint8_t>;

struct MapData {
    std::string name;
    bpf_map_info info{};
    bool percpu = false;
    std::vector<std::pair<Bytes, std::vector<Bytes>>> entries;  // key -> value (one per CPU if per-CPU)
};

Result<MapData> read_map(const Options& o, const std::string& name);

// "hash", "percpu_array", ... (libbpf's names).
std::string type_name(uint32_t type);

// The entries of a map skiff pins, checked against the layout skiffctl knows.
template <typename K, typename V>
Result<std::vector<std::pair<K, V>>> read_typed(const Options& o, const char* name) {
    SKIFF_ASSIGN_OR_RETURN(MapData m, read_map(o, name));
    if (m.info.key_size != sizeof(K) || m.info.value_size != sizeof(V) || m.percpu)
        return Error::invalid(std::string(name) + " has " + std::to_string(m.info.key_size) + "-byte keys and " +
                              std::to_string(m.info.value_size) + "-byte values, skiffctl expects " +
                              std::to_string(sizeof(K)) + " and " + std::to_string(sizeof(V)) +
                              " (datapath and skiffctl from different versions?)");
    std::vector<std::pair<K, V>> out;
    for (const auto& [kb, vb] : m.entries) {
        K k{};
        V v{};
        std::memcpy(&k, kb.data(), sizeof(K));
        std::memcpy(&v, vb[0].data(), sizeof(V));
        out.emplace_back(k, v);
    }
    return out;
}

}  // namespace skiff::ctl
