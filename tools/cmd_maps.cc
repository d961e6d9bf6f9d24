// skiffctl commands that read skiff's maps: nodes, services, conntrack and
// masquerade entries decoded in the datapath's terms, and `map dump` of any
// pinned map (raw bytes, plus the decoded form where the layout is known).
// The maps are read by map_read.h, decoded by map_decode.h and shown as text
// by map_text.h.
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "commands.h"
#include "common/clock.h"
#include "common/files.h"
#include "map_decode.h"
#include "map_read.h"
#include "map_text.h"

namespace skiff::ctl {
namespace {

using nlohmann::json;
using Args = std::vector<std::string>;

uint32_t host(uint32_t be) { return ntohl(be); }

Result<Output> node_list(const Options& o, const Args&) {
    SKIFF_ASSIGN_OR_RETURN(auto nodes, (read_typed<skiff_node_key, skiff_node_info>(o, SKIFF_MAP_NODES)));
    std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
        return std::pair(host(a.first.ip), a.first.prefixlen) < std::pair(host(b.first.ip), b.first.prefixlen);
    });
    json doc = json::array();
    for (const auto& [k, v] : nodes) {
        json e = cidr(k);
        e.update(node_value(v));
        doc.push_back(e);
    }
    return Output{doc, node_text};
}

Result<Output> service_list(const Options& o, const Args&) {
    SKIFF_ASSIGN_OR_RETURN(auto svcs, (read_typed<skiff_service_key, skiff_service_value>(o, SKIFF_MAP_SERVICES)));
    SKIFF_ASSIGN_OR_RETURN(auto bes, (read_typed<uint32_t, skiff_l4_addr>(o, SKIFF_MAP_BACKENDS)));
    const std::map<uint32_t, skiff_l4_addr> backends(bes.begin(), bes.end());
    using Frontend = std::tuple<uint32_t, uint16_t, uint8_t>;  // VIP and port in host order, proto
    std::map<Frontend, std::pair<skiff_service_key, skiff_service_value>> fronts;
    std::map<Frontend, std::map<uint32_t, uint32_t>> slots;  // slot -> backend id
    for (const auto& [k, v] : svcs) {
        Frontend fe{host(k.vip), ntohs(k.port), k.proto};
        if (k.slot == 0)
            fronts[fe] = {k, v};
        else
            slots[fe][k.slot] = v.backend_id;
    }
    auto backend = [&](json id) {  // null id: a slot that is missing
        json b = {{"backend_id", id}, {"ip", nullptr}, {"port", nullptr}, {"proto", nullptr}};
        if (auto it = id.is_null() ? backends.end() : backends.find(id.get<uint32_t>()); it != backends.end())
            b.update(backend_value(it->second));
        return b;
    };
    std::set<uint32_t> slotted;
    json list = json::array();
    for (const auto& [fe, kv] : fronts) {
        json e = svc_key(kv.first);
        e.erase("slot");
        e.update(svc_value(kv.first, kv.second));
        json bl = json::array();
        const auto& mine = slots[fe];
        for (uint32_t s = 1; s <= kv.second.count; ++s) {  // slots beyond count are on their way out
            auto it = mine.find(s);
            json b = backend(it == mine.end() ? json(nullptr) : json(it->second));
            if (it != mine.end()) slotted.insert(it->second);
            b["slot"] = s;
            bl.push_back(b);
        }
        e["backends"] = bl;
        list.push_back(e);
    }
    json term = json::array();
    for (const auto& [id, b] : backends)
        if (!slotted.count(id)) term.push_back(backend(id));
    return Output{{{"frontends", list}, {"terminating", term}}, service_text};
}

auto tuple_order(const skiff_ct_key& k) {
    return std::tuple(k.dir, k.proto, host(k.saddr), ntohs(k.sport), host(k.daddr), ntohs(k.dport));
}

template <typename V>
Result<json> tracked(const Options& o, const char* map, json (*key)(const skiff_ct_key&),
                     json (*value)(const V&, uint64_t)) {
    SKIFF_ASSIGN_OR_RETURN(auto entries, (read_typed<skiff_ct_key, V>(o, map)));
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return tuple_order(a.first) < tuple_order(b.first); });
    const uint64_t now = monotonic_ns();
    json doc = json::array();
    for (const auto& [k, v] : entries) {
        json e = key(k);
        e.update(value(v, now));
        doc.push_back(e);
    }
    return doc;
}

Result<Output> ct_list(const Options& o, const Args&) {
    SKIFF_ASSIGN_OR_RETURN(json doc, tracked<skiff_ct_value>(o, SKIFF_MAP_CT, ct_key, ct_value));
    return Output{doc, ct_text};
}

Result<Output> nat_list(const Options& o, const Args&) {
    SKIFF_ASSIGN_OR_RETURN(json doc, tracked<skiff_nat_value>(o, SKIFF_MAP_SNAT, nat_key, nat_value));
    return Output{doc, nat_text};
}

Result<Output> map_dump(const Options& o, const Args& args) {
    if (args.size() != 1) return Error::invalid("usage: skiffctl map dump NAME (a map pinned in " + o.pin_path + ")");
    std::string name = args[0];
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
        return Error::invalid("invalid map name '" + name + "'");
    if (name.rfind("skiff_", 0) != 0 && !path_exists(o.pin_path + "/" + name) &&
        path_exists(o.pin_path + "/skiff_" + name))
        name = "skiff_" + name;  // "services" for "skiff_services"
    SKIFF_ASSIGN_OR_RETURN(MapData m, read_map(o, name));
    const Decoder* dec = nullptr;
    for (const auto& d : decoders())
        if (name == d.map && m.info.key_size == d.key_size && m.info.value_size == d.value_size) dec = &d;
    const bool sums = m.percpu && m.info.value_size % 8 == 0;  // per-CPU values add up as u64 counters
    const uint64_t now = monotonic_ns();
    json entries = json::array();
    for (const auto& [k, vs] : m.entries) {
        json e = {{"key", hex(k)}};
        Bytes value = vs[0];
        if (m.percpu) {
            json per = json::array();
            std::vector<uint64_t> lanes(m.info.value_size / 8);
            for (size_t c = 0; c < vs.size(); ++c) {
                per.push_back({{"cpu", c}, {"value", hex(vs[c])}});
                for (size_t i = 0; sums && i < lanes.size(); ++i) {
                    uint64_t x;
                    std::memcpy(&x, vs[c].data() + 8 * i, 8);
                    lanes[i] += x;
                }
            }
            e["values"] = per;
            if (sums) std::memcpy(value.data(), lanes.data(), value.size());
            e["sum"] = sums ? json(hex(value)) : json(nullptr);
        } else {
            e["value"] = hex(value);
        }
        if (dec && (!m.percpu || sums)) e["decoded"] = dec->run(k.data(), value.data(), now);
        entries.push_back(e);
    }
    json doc = {{"name", m.name},
                {"type", type_name(m.info.type)},
                {"key_size", m.info.key_size},
                {"value_size", m.info.value_size},
                {"max_entries", m.info.max_entries},
                {"per_cpu", m.percpu},
                {"entries", entries}};
    return Output{doc, dump_text};
}

}  // namespace

std::vector<Noun> map_nouns() {
    return {
        {"node", {{"list", "", node_list}}, "list"}, {"service", {{"list", "", service_list}}, "list"},
        {"ct", {{"list", "", ct_list}}, "list"},     {"nat", {{"list", "", nat_list}}, "list"},
        {"map", {{"dump", "NAME", map_dump}}, ""},
    };
}

}  // namespace skiff::ctl
