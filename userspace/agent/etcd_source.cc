#include <map>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "etcd.h"
#include "source.h"

namespace skiff::agent {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// PodCIDR claims are keyed "a.b.c.d-len" ('/' would nest the key).
std::string cidr_key(const Ipv4Prefix& p) { return p.network().str() + "-" + std::to_string(p.len()); }

std::optional<Ipv4Prefix> parse_cidr_key(std::string k) {
    auto dash = k.rfind('-');
    if (dash == std::string::npos) return std::nullopt;
    k[dash] = '/';
    auto p = Ipv4Prefix::parse(k);
    if (!p) return std::nullopt;
    return *p;
}

class EtcdSource final : public Source {
public:
    EtcdSource(EtcdSourceOptions o, std::vector<Endpoint> eps)
        : opts_(std::move(o)), client_(eps), watch_(eps, opts_.prefix + "/") {}

    std::string describe() const override {
        std::string s = "etcd";
        for (const auto& e : client_.endpoints()) s += " " + e.host + ":" + std::to_string(e.port);
        return s + " " + opts_.prefix;
    }

    Result<std::optional<ClusterSpec>> poll() override {
        SKIFF_TRY(keep_registered());
        if (!dirty_ && !watch_.take_changed()) return std::optional<ClusterSpec>{};
        dirty_ = true;  // stays set until a read succeeds
        SKIFF_ASSIGN_OR_RETURN(auto kvs, client_.range_prefix(opts_.prefix + "/nodes/"));
        ClusterSpec spec;
        for (const auto& [k, v] : kvs) {
            json j = json::parse(v, nullptr, false);
            NodeSpec n;
            n.name = k.substr(k.rfind('/') + 1);
            if (j.is_object()) {
                if (auto ip = Ipv4::parse(j.value("ip", "")); ip) n.ip = *ip;
                if (j.contains("podCIDR") && j["podCIDR"].is_string())
                    n.pod_cidrs.push_back(j["podCIDR"].get<std::string>());
            }
            spec.nodes.push_back(std::move(n));
        }
        // Services and EndpointSlices, stored as their Kubernetes JSON.
        for (const char* kind : {"services", "endpointslices"}) {
            SKIFF_ASSIGN_OR_RETURN(auto objs, client_.range_prefix(opts_.prefix + "/" + kind + "/"));
            auto& cache = cache_[kind];
            std::map<std::string, Cached> seen;
            for (auto& [k, v] : objs) {
                // An unchanged value keeps its parsed object (and pointer).
                Cached c;
                if (auto it = cache.find(k); it != cache.end() && it->second.raw == v)
                    c = std::move(it->second);
                else
                    c = {std::move(v), nullptr};
                if (!c.obj) {
                    json j = json::parse(c.raw, nullptr, false);
                    if (!j.is_object()) {
                        spec.problems.push_back("etcd " + k + ": not a JSON object: skipped");
                        continue;
                    }
                    c.obj = std::make_shared<const json>(std::move(j));
                }
                std::string key = ObjectSet::key_of(*c.obj);
                if (!(kind[0] == 's' ? spec.services : spec.endpoint_slices).add(key, c.obj))
                    spec.problems.push_back("etcd " + k + ": " + key + " is stored under another key too: skipped");
                seen.emplace(k, std::move(c));
            }
            cache = std::move(seen);
        }
        dirty_ = false;
        spec.number_after(prev_);
        prev_ = spec;
        return std::optional<ClusterSpec>{std::move(spec)};
    }

private:
    // Register (or re-register after the lease was lost) and refresh the lease.
    Status keep_registered() {
        auto now = Clock::now();
        if (!lease_.empty() && now < next_keepalive_) return ok();
        if (!lease_.empty()) {
            auto ttl = client_.keepalive(lease_);
            if (!ttl) return ttl.error().wrap("lease keepalive");
            if (*ttl > 0) {
                next_keepalive_ = now + std::chrono::milliseconds(opts_.lease_ttl * 1000 / 3);
                return ok();
            }
            log::warn("etcd lease " + lease_ + " expired; registering again");
            lease_.clear();
        }
        if (!pod_cidr_) {
            SKIFF_ASSIGN_OR_RETURN(pod_cidr_, claim_pod_cidr());
        }
        SKIFF_ASSIGN_OR_RETURN(std::string lease, client_.grant_lease(opts_.lease_ttl));
        json me = {{"name", opts_.node_name}, {"ip", opts_.node_ip.str()}, {"podCIDR", pod_cidr_->str()}};
        SKIFF_TRY(client_.put(opts_.prefix + "/nodes/" + opts_.node_name, me.dump(), lease));
        lease_ = lease;
        dirty_ = true;
        next_keepalive_ = now + std::chrono::milliseconds(opts_.lease_ttl * 1000 / 3);
        log::info("registered node " + opts_.node_name + " (" + pod_cidr_->str() + ") in " + describe());
        return ok();
    }

    // Our existing claim, else the first free PodCIDR, taken with a
    // create-if-absent transaction so two agents never get the same one.
    Result<std::optional<Ipv4Prefix>> claim_pod_cidr() {
        if (opts_.pod_cidr) {
            SKIFF_ASSIGN_OR_RETURN(
                bool created, client_.create(opts_.prefix + "/podcidrs/" + cidr_key(*opts_.pod_cidr), opts_.node_name));
            (void)created;  // configured CIDRs are recorded, not negotiated
            return std::optional<Ipv4Prefix>{opts_.pod_cidr};
        }
        const std::string dir = opts_.prefix + "/podcidrs/";
        SKIFF_ASSIGN_OR_RETURN(auto claims, client_.range_prefix(dir));
        for (const auto& [k, owner] : claims)
            if (owner == opts_.node_name)
                if (auto p = parse_cidr_key(k.substr(dir.size()))) return p;
        const auto& cc = opts_.cluster_cidr;
        if (opts_.pod_cidr_len < cc.len() || opts_.pod_cidr_len > 30)
            return Error::invalid("podCIDRSize /" + std::to_string(opts_.pod_cidr_len) + " does not fit clusterCIDR " +
                                  cc.str());
        uint64_t count = uint64_t{1} << (opts_.pod_cidr_len - cc.len());
        uint32_t step = static_cast<uint32_t>(uint64_t{1} << (32 - opts_.pod_cidr_len));
        for (uint64_t i = 0; i < count; ++i) {
            Ipv4Prefix cand(Ipv4(cc.network().value() + static_cast<uint32_t>(i) * step), opts_.pod_cidr_len);
            SKIFF_ASSIGN_OR_RETURN(bool won, client_.create(dir + cidr_key(cand), opts_.node_name));
            if (won) {
                log::info("claimed PodCIDR " + cand.str() + " for " + opts_.node_name);
                return std::optional<Ipv4Prefix>{cand};
            }
        }
        return Error{ENOSPC, "no free PodCIDR left in " + cc.str()};
    }

    EtcdSourceOptions opts_;
    EtcdClient client_;
    EtcdWatch watch_;
    std::optional<Ipv4Prefix> pod_cidr_;
    std::string lease_;
    Clock::time_point next_keepalive_{};
    bool dirty_ = true;
    struct Cached {
        std::string raw;
        ObjectRef obj;
    };
    std::map<std::string, std::map<std::string, Cached>> cache_;  // kind -> etcd key -> object
    ClusterSpec prev_;                                            // the last snapshot, numbered
};

}  // namespace

Result<std::unique_ptr<Source>> make_etcd_source(EtcdSourceOptions opts) {
    std::vector<Endpoint> eps;
    for (const auto& u : opts.endpoints) {
        SKIFF_ASSIGN_OR_RETURN(auto e, parse_endpoint_url(u));
        eps.push_back(e);
    }
    if (eps.empty()) return Error::invalid("etcd source needs at least one endpoint");
    if (opts.lease_ttl < 2) return Error::invalid("etcd leaseTTL must be at least 2 seconds");
    return std::unique_ptr<Source>(new EtcdSource(std::move(opts), std::move(eps)));
}

}  // namespace skiff::agent
