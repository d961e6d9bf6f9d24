#include <optional>

#include "datapath.h"
#include "maps.h"
#include "pins.h"
#include "tc.h"

namespace skiff {
namespace {

class BpfDatapath final : public Datapath {
public:
    explicit BpfDatapath(std::string pin_dir) : pin_dir_(std::move(pin_dir)) {}

    Status ensure_loaded() override {
        if (prog_.valid()) return ok();
        SKIFF_ASSIGN_OR_RETURN(prog_, datapath::pinned_program(datapath::Program::FromPod, pin_dir_));
        return ok();
    }

    Status attach_pod(int host_ifindex) override {
        SKIFF_TRY(ensure_loaded());
        return datapath::tc_attach(host_ifindex, datapath::TcHook::Ingress, prog_.get());
    }

    Result<bool> pod_attached(int host_ifindex) override {
        SKIFF_TRY(ensure_loaded());
        SKIFF_ASSIGN_OR_RETURN(uint32_t want, datapath::prog_id_of(prog_.get()));
        SKIFF_ASSIGN_OR_RETURN(uint32_t have, datapath::tc_attached_id(host_ifindex, datapath::TcHook::Ingress));
        return have == want;
    }

    Status upsert_endpoint(Ipv4 ip, const skiff_endpoint_info& info) override {
        SKIFF_TRY(endpoints());
        return endpoints_->upsert(ip, info);
    }

    Status delete_endpoint(Ipv4 ip) override {
        auto s = endpoints();
        if (!s) return s.error().code == ENOENT ? ok() : s;  // nothing pinned: nothing to delete
        auto r = endpoints_->remove(ip);
        if (!r && r.error().code != ENOENT) return r;
        return ok();
    }

    Result<std::optional<skiff_endpoint_info>> lookup_endpoint(Ipv4 ip) override {
        SKIFF_TRY(endpoints());
        return endpoints_->lookup(ip);
    }

    Result<std::vector<std::pair<Ipv4, skiff_endpoint_info>>> list_endpoints() override {
        SKIFF_TRY(endpoints());
        return endpoints_->list();
    }

    Result<bool> node_cidr_is_local(const Ipv4Prefix& cidr) override {
        SKIFF_ASSIGN_OR_RETURN(auto nodes, datapath::NodeMap::open(pin_dir_));
        SKIFF_ASSIGN_OR_RETURN(auto entries, nodes.list());
        for (const auto& [c, info] : entries)
            if (c == cidr && (info.flags & SKIFF_NODE_F_LOCAL)) return true;
        return false;
    }

private:
    Status endpoints() {
        if (endpoints_) return ok();
        SKIFF_ASSIGN_OR_RETURN(auto m, datapath::EndpointMap::open(pin_dir_));
        endpoints_.emplace(std::move(m));
        return ok();
    }

    std::string pin_dir_;
    UniqueFd prog_;
    std::optional<datapath::EndpointMap> endpoints_;
};

}  // namespace

std::unique_ptr<Datapath> make_bpf_datapath(std::string pin_dir) {
    return std::make_unique<BpfDatapath>(std::move(pin_dir));
}

}  // namespace skiff
