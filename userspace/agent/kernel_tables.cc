// The agent's kernel access in one place: the pinned BPF maps and the
// routes it programs, each behind the interface its logic is unit-tested
// with fakes through (kernel_tables.h).
#include "kernel_tables.h"

#include <bpf/bpf.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>

#include "datapath/maps.h"
#include "datapath/pins.h"
#include "net/rtnetlink.h"

namespace skiff::agent {
namespace {

// ---- nodes and routes ----

class BpfNodeTable final : public NodeTable {
public:
    explicit BpfNodeTable(std::string pin) : pin_(std::move(pin)) {}

    Result<std::map<Ipv4Prefix, skiff_node_info>> list() override {
        SKIFF_TRY(open());
        SKIFF_ASSIGN_OR_RETURN(auto entries, map_->list());
        return std::map<Ipv4Prefix, skiff_node_info>(entries.begin(), entries.end());
    }
    Status put(const Ipv4Prefix& cidr, const skiff_node_info& info) override {
        SKIFF_TRY(open());
        return map_->upsert(cidr, info);
    }
    Status remove(const Ipv4Prefix& cidr) override {
        SKIFF_TRY(open());
        return map_->remove(cidr);
    }

private:
    Status open() {
        if (map_) return ok();
        SKIFF_ASSIGN_OR_RETURN(auto m, datapath::NodeMap::open(pin_));
        map_.emplace(std::move(m));
        return ok();
    }
    std::string pin_;
    std::optional<datapath::NodeMap> map_;
};

class KernelRouteTable final : public RouteTable {
public:
    KernelRouteTable(int uplink, int tunnel) : uplink_(uplink), tunnel_(tunnel) {}

    Result<std::map<Ipv4Prefix, RouteVia>> list() override {
        SKIFF_TRY(open());
        SKIFF_ASSIGN_OR_RETURN(auto all, nl_->routes());
        std::map<Ipv4Prefix, RouteVia> out;
        for (const auto& r : all) {
            if (r.protocol != kSkiffRouteProto) continue;
            if (r.gateway)
                out[r.dst] = RouteVia(*r.gateway);
            else if (tunnel_ && r.ifindex == tunnel_)
                out[r.dst] = RouteVia::through_tunnel();
        }
        return out;
    }
    Status put(const Ipv4Prefix& cidr, const RouteVia& via) override {
        SKIFF_TRY(open());
        if (via.tunnel) {
            if (!tunnel_) return Error::invalid("route " + cidr.str() + " through a tunnel, but there is none");
            return nl_->replace_route(cidr, tunnel_, std::nullopt, RT_SCOPE_LINK, kSkiffRouteProto);
        }
        return nl_->replace_route(cidr, uplink_, via.gateway, RT_SCOPE_UNIVERSE, kSkiffRouteProto);
    }
    Status remove(const Ipv4Prefix& cidr) override {
        SKIFF_TRY(open());
        auto s = nl_->delete_route(cidr, 0, kSkiffRouteProto);
        if (!s && s.error().code == ESRCH) return ok();
        return s;
    }

private:
    Status open() {
        if (nl_) return ok();
        SKIFF_ASSIGN_OR_RETURN(auto nl, Netlink::open());
        nl_.emplace(std::move(nl));
        return ok();
    }
    int uplink_, tunnel_;
    std::optional<Netlink> nl_;
};

// ---- services ----

template <typename K, typename V>
Result<std::map<K, V>> dump(int fd, const char* what) {
    std::map<K, V> out;
    SKIFF_TRY((datapath::for_each_entry<K, V>(fd, what, [&](const K& k, const V& v) { out[k] = v; })));
    return out;
}

class BpfServiceTables final : public ServiceTables {
public:
    explicit BpfServiceTables(std::string pin) : pin_(std::move(pin)) {}

    Result<std::map<SvcKey, skiff_service_value>> services() override {
        SKIFF_TRY(open());
        std::map<SvcKey, skiff_service_value> out;
        SKIFF_TRY((datapath::for_each_entry<skiff_service_key, skiff_service_value>(
            svc_.get(), "services", [&](const auto& k, const auto& v) {
                out[{k.vip, k.port, k.proto, k.slot}] = v;
            })));
        return out;
    }
    Result<std::map<uint32_t, skiff_l4_addr>> backends() override {
        SKIFF_TRY(open());
        return dump<uint32_t, skiff_l4_addr>(be_.get(), "backends");
    }
    Result<std::map<uint16_t, skiff_l4_addr>> revnats() override {
        SKIFF_TRY(open());
        SKIFF_ASSIGN_OR_RETURN(auto raw, (dump<uint32_t, skiff_l4_addr>(rn_.get(), "revnat")));
        std::map<uint16_t, skiff_l4_addr> out;
        for (const auto& [k, v] : raw) {
            skiff_revnat_key rk;
            std::memcpy(&rk, &k, sizeof(rk));
            out[rk.id] = v;
        }
        return out;
    }
    Status put_service(const SvcKey& k, const skiff_service_value& v) override {
        SKIFF_TRY(open());
        skiff_service_key key{k.vip_be, k.port_be, k.proto, 0, k.slot, 0};
        if (bpf_map_update_elem(svc_.get(), &key, &v, BPF_ANY) != 0) return Error::errno_("update service");
        return ok();
    }
    Status del_service(const SvcKey& k) override {
        SKIFF_TRY(open());
        skiff_service_key key{k.vip_be, k.port_be, k.proto, 0, k.slot, 0};
        if (bpf_map_delete_elem(svc_.get(), &key) != 0 && errno != ENOENT) return Error::errno_("delete service");
        return ok();
    }
    Status put_backend(uint32_t id, const skiff_l4_addr& b) override {
        SKIFF_TRY(open());
        if (bpf_map_update_elem(be_.get(), &id, &b, BPF_ANY) != 0) return Error::errno_("update backend");
        return ok();
    }
    Status del_backend(uint32_t id) override {
        SKIFF_TRY(open());
        if (bpf_map_delete_elem(be_.get(), &id) != 0 && errno != ENOENT) return Error::errno_("delete backend");
        return ok();
    }
    Status put_revnat(uint16_t id, const skiff_l4_addr& v) override {
        SKIFF_TRY(open());
        skiff_revnat_key k{id, 0};
        if (bpf_map_update_elem(rn_.get(), &k, &v, BPF_ANY) != 0) return Error::errno_("update revnat");
        return ok();
    }
    Status del_revnat(uint16_t id) override {
        SKIFF_TRY(open());
        skiff_revnat_key k{id, 0};
        if (bpf_map_delete_elem(rn_.get(), &k) != 0 && errno != ENOENT) return Error::errno_("delete revnat");
        return ok();
    }

    Result<std::map<MaglevKey, uint32_t>> maglev() override {
        SKIFF_TRY(open());
        std::map<MaglevKey, uint32_t> out;
        SKIFF_TRY(
            (datapath::for_each_entry<skiff_maglev_key, uint32_t>(mg_.get(), "maglev", [&](const auto& k, uint32_t v) {
                out[{k.revnat_id, k.index}] = v;
            })));
        return out;
    }
    Status put_maglev(const MaglevKey& k, uint32_t backend) override {
        SKIFF_TRY(open());
        skiff_maglev_key key{k.first, 0, k.second};
        if (bpf_map_update_elem(mg_.get(), &key, &backend, BPF_ANY) != 0) return Error::errno_("update maglev");
        return ok();
    }
    Status del_maglev(const MaglevKey& k) override {
        SKIFF_TRY(open());
        skiff_maglev_key key{k.first, 0, k.second};
        if (bpf_map_delete_elem(mg_.get(), &key) != 0 && errno != ENOENT) return Error::errno_("delete maglev");
        return ok();
    }

private:
    Status open() {
        if (svc_.valid()) return ok();
        SKIFF_ASSIGN_OR_RETURN(mg_, datapath::open_pinned_map(pin_, SKIFF_MAP_MAGLEV));
        SKIFF_ASSIGN_OR_RETURN(svc_, datapath::open_pinned_map(pin_, SKIFF_MAP_SERVICES));
        SKIFF_ASSIGN_OR_RETURN(be_, datapath::open_pinned_map(pin_, SKIFF_MAP_BACKENDS));
        SKIFF_ASSIGN_OR_RETURN(rn_, datapath::open_pinned_map(pin_, SKIFF_MAP_REVNAT));
        return ok();
    }
    std::string pin_;
    UniqueFd svc_, be_, rn_, mg_;
};

// ---- conntrack and masquerade ----

class BpfCtTable final : public CtTable {
public:
    explicit BpfCtTable(std::string pin) : map_(std::move(pin), SKIFF_MAP_CT) {}

    Result<uint64_t> walk(const std::function<void(const skiff_ct_key&, const skiff_ct_value&)>& f) override {
        SKIFF_ASSIGN_OR_RETURN(int fd, map_.fd());
        uint64_t n = 0;
        SKIFF_TRY(
            (datapath::for_each_entry<skiff_ct_key, skiff_ct_value>(fd, "conntrack", [&](const auto& k, const auto& v) {
                ++n;
                f(k, v);
            })));
        return n;
    }
    Result<std::optional<skiff_ct_value>> lookup(const skiff_ct_key& k) override {
        SKIFF_ASSIGN_OR_RETURN(int fd, map_.fd());
        return datapath::lookup_entry<skiff_ct_value>(fd, k, "conntrack");
    }
    Status remove(const skiff_ct_key& k) override {
        SKIFF_ASSIGN_OR_RETURN(int fd, map_.fd());
        return datapath::delete_entry(fd, k, "conntrack");
    }

private:
    datapath::LazyPinnedMap map_;
};

class BpfSnatTable final : public SnatTable {
public:
    explicit BpfSnatTable(std::string pin) : pin_(pin), map_(std::move(pin), SKIFF_MAP_SNAT) {}
    Result<NatEntries> list() override {
        SKIFF_ASSIGN_OR_RETURN(int fd, map_.fd());
        NatEntries out;
        SKIFF_TRY((datapath::for_each_entry<skiff_ct_key, skiff_nat_value>(
            fd, "snat", [&](const auto& k, const auto& v) { out[k] = v; })));
        return out;
    }
    Result<std::optional<skiff_nat_value>> lookup(const skiff_ct_key& k) override {
        SKIFF_ASSIGN_OR_RETURN(int fd, map_.fd());
        return datapath::lookup_entry<skiff_nat_value>(fd, k, "snat");
    }
    Status remove(const skiff_ct_key& k) override {
        SKIFF_ASSIGN_OR_RETURN(int fd, map_.fd());
        return datapath::delete_entry(fd, k, "snat");
    }

    Status sync_nomasq(const std::set<Ipv4Prefix>& want) override {
        SKIFF_ASSIGN_OR_RETURN(UniqueFd fd, datapath::open_pinned_map(pin_, SKIFF_MAP_NOMASQ));
        std::set<Ipv4Prefix> have;
        SKIFF_TRY((datapath::for_each_entry<skiff_node_key, uint32_t>(fd.get(), "nomasq", [&](const auto& k, uint32_t) {
            have.insert(Ipv4Prefix(Ipv4::from_be(k.ip), static_cast<int>(k.prefixlen)));
        })));
        uint32_t one = 1;
        for (const auto& p : want) {
            if (have.count(p)) continue;
            skiff_node_key k{static_cast<__u32>(p.len()), p.network().be()};
            if (bpf_map_update_elem(fd.get(), &k, &one, BPF_ANY) != 0) return Error::errno_("update nomasq " + p.str());
        }
        for (const auto& p : have) {
            if (want.count(p)) continue;
            skiff_node_key k{static_cast<__u32>(p.len()), p.network().be()};
            if (bpf_map_delete_elem(fd.get(), &k) != 0 && errno != ENOENT)
                return Error::errno_("delete nomasq " + p.str());
        }
        return ok();
    }

private:
    std::string pin_;
    datapath::LazyPinnedMap map_;
};

// ---- what /metrics and the GC read ----

class BpfDatapathReader final : public DatapathReader {
public:
    explicit BpfDatapathReader(std::string pin) : pin_(std::move(pin)) {}

    DatapathStats stats() override {
        DatapathStats dp;
        if (auto eps = datapath::EndpointMap::open(pin_); eps)
            if (auto l = eps->list(); l) dp.endpoints = static_cast<long long>(l->size());
        if (auto m = datapath::MetricsMap::open(pin_); m) {
            if (auto rows = m->read(); rows) {
                dp.counts_read = true;
                for (const auto& r : *rows)
                    if (r.reason != SKIFF_CT_ENTRY_INSERTED && r.reason != SKIFF_CT_ENTRY_REMOVED)
                        dp.counts.push_back({std::string(datapath::reason_name(r.reason)),
                                             std::string(datapath::dir_name(r.dir)), r.packets, r.bytes});
            }
        }
        return dp;
    }
    std::optional<CtDatapathCounts> ct_counts() override {
        auto m = datapath::MetricsMap::open(pin_);
        if (!m) return std::nullopt;
        auto rows = m->read();
        if (!rows) return std::nullopt;
        CtDatapathCounts c;
        for (const auto& r : *rows) {
            if (r.reason == SKIFF_CT_ENTRY_INSERTED) c.inserted += r.packets;
            if (r.reason == SKIFF_CT_ENTRY_REMOVED) c.removed += r.packets;
        }
        return c;
    }

private:
    std::string pin_;
};

}  // namespace

std::unique_ptr<NodeTable> make_bpf_node_table(const std::string& pin_dir) {
    return std::make_unique<BpfNodeTable>(pin_dir);
}

std::unique_ptr<RouteTable> make_kernel_route_table(int uplink_ifindex, int tunnel_ifindex) {
    return std::make_unique<KernelRouteTable>(uplink_ifindex, tunnel_ifindex);
}

std::unique_ptr<ServiceTables> make_bpf_service_tables(const std::string& pin_dir) {
    return std::make_unique<BpfServiceTables>(pin_dir);
}

std::unique_ptr<CtTable> make_bpf_ct_table(const std::string& pin_dir) { return std::make_unique<BpfCtTable>(pin_dir); }

std::unique_ptr<SnatTable> make_bpf_snat_table(const std::string& pin_dir) {
    return std::make_unique<BpfSnatTable>(pin_dir);
}

std::unique_ptr<DatapathReader> make_bpf_datapath_reader(const std::string& pin_dir) {
    return std::make_unique<BpfDatapathReader>(pin_dir);
}

}  // namespace skiff::agent
