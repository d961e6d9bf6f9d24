#include "cluster.h"

#include <algorithm>
#include <cstdio>

namespace skiff::agent {

using nlohmann::json;

// Reads a string member; anything else (absent, null, a number...) is def.
// json::value() would throw on a present member of another type.
static std::string str_or(const json& j, const char* key, const std::string& def = "") {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : def;
}

static std::string str_at(const json& j, const char* a, const char* b) {
    if (!j.contains(a) || !j[a].is_object() || !j[a].contains(b) || !j[a][b].is_string()) return "";
    return j[a][b].get<std::string>();
}

static NodeSpec parse_node(const json& item) {
    NodeSpec n;
    n.name = str_at(item, "metadata", "name");
    n.created = creation_time(item);
    if (item.contains("spec") && item["spec"].is_object()) {
        const auto& spec = item["spec"];
        if (spec.contains("podCIDRs") && spec["podCIDRs"].is_array()) {
            for (const auto& c : spec["podCIDRs"])
                if (c.is_string()) n.pod_cidrs.push_back(c.get<std::string>());
        }
        if (n.pod_cidrs.empty() && spec.contains("podCIDR") && spec["podCIDR"].is_string())
            n.pod_cidrs.push_back(spec["podCIDR"].get<std::string>());
    }
    if (item.contains("status") && item["status"].is_object() && item["status"].contains("addresses") &&
        item["status"]["addresses"].is_array()) {
        for (const auto& a : item["status"]["addresses"]) {
            if (!a.is_object() || str_or(a, "type") != "InternalIP" || !a.contains("address") ||
                !a["address"].is_string())
                continue;
            if (auto ip = Ipv4::parse(a["address"].get<std::string>()); ip) {
                n.ip = *ip;
                break;
            }
        }
    }
    return n;
}

Result<ClusterSpec> parse_kube_list(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return Error::invalid("source is not valid JSON");
    if (!j.is_object() || !j.contains("items") || !j["items"].is_array())
        return Error::invalid("source is not a kubectl List (no 'items' array)");
    const std::string list_kind = str_or(j, "kind");
    ClusterSpec c;
    for (auto& item : j["items"]) {
        if (!item.is_object()) return Error::invalid("source: an item is not an object");
        std::string kind = str_or(item, "kind", list_kind == "NodeList" ? "Node" : "");
        if (kind == "Node") {
            c.nodes.push_back(parse_node(item));
        } else if (kind == "Service" || kind == "EndpointSlice") {
            std::string key = ObjectSet::key_of(item);
            if (!(kind == "Service" ? c.services : c.endpoint_slices).add(std::move(item)))
                c.problems.push_back(kind + " " + key + " is listed more than once: the later copy is skipped");
        }
    }
    return c;
}

std::string ObjectSet::key_of(const json& obj) {
    auto it = obj.find("metadata");
    static const json none = json::object();
    const json& meta = it != obj.end() && it->is_object() ? *it : none;
    return str_or(meta, "namespace", "default") + "/" + str_or(meta, "name", "?");
}

std::optional<int64_t> creation_time(const json& obj) {
    auto m = obj.find("metadata");
    if (m == obj.end() || !m->is_object()) return std::nullopt;
    std::string t = str_or(*m, "creationTimestamp");
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, used = 0;
    if (std::sscanf(t.c_str(), "%4d-%2d-%2d%*1[Tt]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &used) != 6 || used != 19 ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return std::nullopt;
    size_t i = 19;
    int64_t us = 0;
    if (i < t.size() && t[i] == '.') {
        int digits = 0;
        for (++i; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i, ++digits)
            if (digits < 6) us = us * 10 + (t[i] - '0');
        if (digits == 0) return std::nullopt;
        for (; digits < 6; ++digits) us *= 10;
    }
    int64_t offset_s = 0;
    if (i < t.size() && (t[i] == 'Z' || t[i] == 'z')) {
        ++i;
    } else if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
        int oh = 0, om = 0, n = 0;
        if (std::sscanf(t.c_str() + i + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59)
            return std::nullopt;
        offset_s = (t[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
        i += 6;
    } else {
        return std::nullopt;
    }
    if (i != t.size()) return std::nullopt;
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    const int64_t yy = y - (mo <= 2);
    const int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    const int64_t yoe = yy - era * 400;
    const int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
    return ((days * 86400 + h * 3600 + mi * 60 + s) - offset_s) * 1000000 + us;
}

void ObjectSet::reuse_unchanged(const ObjectSet& prev) {
    auto p = prev.m_.begin();
    for (auto& [key, obj] : m_) {
        while (p != prev.m_.end() && p->first < key) ++p;
        if (p == prev.m_.end()) break;
        if (p->first == key && p->second != obj && *p->second == *obj) obj = p->second;
    }
}

void ClusterSpec::number_after(const ClusterSpec& prev) {
    generation = prev.generation + 1;
    changes.reset();
    if (prev.generation == 0) return;  // nothing to compare with
    Changes c;
    c.since = prev.generation;
    auto same = [](const ObjectRef& o) { return o; };
    changed_keys(prev.services, services, same, c.services);
    changed_keys(prev.endpoint_slices, endpoint_slices, same, c.endpoint_slices);
    changes = std::move(c);
}

Plan plan_nodes(const ClusterSpec& spec, const std::string& local_node, const Ipv4Prefix& cluster_cidr,
                const std::map<Ipv4Prefix, Ipv4>& current) {
    Plan plan;
    std::vector<NodeRoute> candidates;
    for (const auto& n : spec.nodes) {
        if (n.name.empty()) {
            plan.problems.push_back("a Node has no metadata.name: skipped");
            continue;
        }
        if (!n.ip) {
            plan.problems.push_back("node " + n.name + " has no InternalIP address: skipped");
            continue;
        }
        for (const auto& cs : n.pod_cidrs) {
            if (cs.find(':') != std::string::npos) continue;  // IPv6 half of a dual-stack node
            auto p = Ipv4Prefix::parse(cs);
            if (!p) {
                plan.problems.push_back("node " + n.name + ": " + p.error().message + ": skipped");
                continue;
            }
            if (!cluster_cidr.contains(p->network()) || p->len() < cluster_cidr.len()) {
                plan.problems.push_back("node " + n.name + ": PodCIDR " + p->str() + " is outside clusterCIDR " +
                                        cluster_cidr.str() + ": skipped");
                continue;
            }
            candidates.push_back({n.name, *p, *n.ip, n.name == local_node, n.created});
        }
    }
    // Already-programmed claims first, then the older node, then by name,
    // so a newcomer cannot displace a working node by overlapping it.
    auto programmed = [&](const NodeRoute& r) {
        auto it = current.find(r.pod_cidr);
        return it != current.end() && it->second == r.node_ip;
    };
    auto older = [](const std::optional<int64_t>& a, const std::optional<int64_t>& b) { return a && (!b || *a < *b); };
    std::stable_sort(candidates.begin(), candidates.end(), [&](const NodeRoute& a, const NodeRoute& b) {
        bool pa = programmed(a), pb = programmed(b);
        if (pa != pb) return pa;
        if (older(a.created, b.created) || older(b.created, a.created)) return older(a.created, b.created);
        return a.node < b.node;
    });
    for (const auto& c : candidates) {
        auto clash = std::find_if(plan.routes.begin(), plan.routes.end(),
                                  [&](const NodeRoute& r) { return r.pod_cidr.overlaps(c.pod_cidr); });
        if (clash != plan.routes.end()) {
            plan.problems.push_back("node " + c.node + ": PodCIDR " + c.pod_cidr.str() + " overlaps " +
                                    clash->pod_cidr.str() + " of node " + clash->node + ": skipped");
            ++plan.conflicts;
            continue;
        }
        plan.routes.push_back(c);
        if (c.local && !plan.local_pod_cidr) plan.local_pod_cidr = c.pod_cidr;
    }
    return plan;
}

}  // namespace skiff::agent
