// The cluster as the agent sees it: nodes (name, IP, PodCIDRs) parsed from
// Kubernetes-shaped objects, and validated into what the datapath needs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ipv4.h"
#include "common/result.h"

namespace skiff::agent {

struct NodeSpec {
    std::string name;
    std::optional<Ipv4> ip;              // status.addresses InternalIP
    std::vector<std::string> pod_cidrs;  // as written (validated later)
    std::optional<int64_t> created;      // metadata.creationTimestamp (creation_time)
    bool operator==(const NodeSpec&) const = default;
};

// A source object (Service, EndpointSlice) as it came, shared and never
// modified: a source hands on the same pointer while the object is
// unchanged, so consumers find what changed by comparing pointers.
using ObjectRef = std::shared_ptr<const nlohmann::json>;

// Objects of one kind keyed "<namespace>/<name>" (namespace "default" when
// absent), in key order.
class ObjectSet {
public:
    using Map = std::map<std::string, ObjectRef>;
    static std::string key_of(const nlohmann::json& obj);
    // False (and nothing added) when the key is already taken.
    bool add(nlohmann::json obj) {
        std::string key = key_of(obj);  // before obj is moved from
        return add(std::move(key), std::make_shared<const nlohmann::json>(std::move(obj)));
    }
    bool add(std::string key, ObjectRef obj) { return m_.emplace(std::move(key), std::move(obj)).second; }
    void erase(const std::string& key) { m_.erase(key); }
    const ObjectRef* find(const std::string& key) const {
        auto it = m_.find(key);
        return it == m_.end() ? nullptr : &it->second;
    }
    size_t size() const { return m_.size(); }
    bool empty() const { return m_.empty(); }
    Map::const_iterator begin() const { return m_.begin(); }
    Map::const_iterator end() const { return m_.end(); }
    // Where an object here equals one in prev, take prev's pointer, so an
    // unchanged object keeps its identity across snapshots.
    void reuse_unchanged(const ObjectSet& prev);

private:
    Map m_;
};

// Walks a key-ordered map of what was seen before and the objects now, and
// adds to out every key added, removed, or held by another object (pointer)
// now. obj_of gives the ObjectRef of a `before` value.
template <class Before, class ObjOf>
void changed_keys(const Before& before, const ObjectSet& now, ObjOf obj_of, std::set<std::string>& out) {
    auto b = before.begin();
    auto n = now.begin();
    while (b != before.end() || n != now.end()) {
        if (n == now.end() || (b != before.end() && b->first < n->first)) {
            out.insert((b++)->first);
        } else if (b == before.end() || n->first < b->first) {
            out.insert((n++)->first);
        } else {
            if (obj_of(b->second) != n->second) out.insert(n->first);
            ++b;
            ++n;
        }
    }
}

struct ClusterSpec {
    std::vector<NodeSpec> nodes;
    ObjectSet services;                 // kind: Service
    ObjectSet endpoint_slices;          // kind: EndpointSlice
    std::vector<std::string> problems;  // objects the source could not take, and why

    // Set by sources that number their snapshots: which keys differ (added,
    // changed or removed) from snapshot `since`. A consumer that last saw
    // `since` need look at nothing else; any other falls back to comparing.
    struct Changes {
        uint64_t since = 0;
        std::set<std::string> services, endpoint_slices;
    };
    uint64_t generation = 0;  // 0: not numbered
    std::optional<Changes> changes;
    // Numbers this snapshot after prev and records what differs from it
    // (by pointer: call after reuse_unchanged).
    void number_after(const ClusterSpec& prev);
};

// A kubectl-style List (or NodeList) as `kubectl get nodes,svc,endpointslices -o json` prints it.
Result<ClusterSpec> parse_kube_list(const std::string& text);

// An object's metadata.creationTimestamp (RFC 3339, as the API server
// writes it) in microseconds since the epoch; nullopt when absent or not
// a timestamp. Of two objects claiming one thing, the older one wins.
std::optional<int64_t> creation_time(const nlohmann::json& obj);

struct NodeRoute {
    std::string node;
    Ipv4Prefix pod_cidr;
    Ipv4 node_ip;
    bool local = false;
    std::optional<int64_t> created;  // of the node: the older wins an overlap
};

struct Plan {
    std::vector<NodeRoute> routes;      // one per PodCIDR, no overlaps
    std::vector<std::string> problems;  // what was skipped and why
    size_t conflicts = 0;               // PodCIDRs skipped for overlapping another node's
    std::optional<Ipv4Prefix> local_pod_cidr;
};

// Validates nodes against the cluster CIDR: a node without an address or
// with an invalid or out-of-range CIDR is skipped; of overlapping PodCIDRs
// the one already programmed (in `current`) wins, then the older node by
// creationTimestamp (one without comes after), then name order.
Plan plan_nodes(const ClusterSpec& spec, const std::string& local_node, const Ipv4Prefix& cluster_cidr,
                const std::map<Ipv4Prefix, Ipv4>& current);

}  // namespace skiff::agent
