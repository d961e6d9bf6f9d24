#include "ct_gc.h"

#include <bpf/bpf.h>
#include <netinet/in.h>
#include <time.h>

#include <vector>

#include "bpf/maps.h"
#include "bpf/pins.h"

namespace skiff::agent {

uint64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Result<CtGcStats> ct_gc(CtTable& t, const CtTimeouts& to, uint64_t now_ns,
                        const std::map<uint32_t, skiff_backend>& backends) {
    CtGcStats st;
    auto r = t.sweep([&](const skiff_ct_key& k, const skiff_ct_value& v) {
        ++st.scanned;
        if (!backends.count(v.backend_id)) {
            ++st.stale_backend;
            return true;
        }
        uint32_t timeout = to.udp;
        if (k.proto == IPPROTO_TCP) {
            // Never answered (SYNs only, retransmitted or not): tcp_syn.
            if (v.flags & SKIFF_CT_F_CLOSING) timeout = to.tcp_closing;
            else if (!(v.flags & SKIFF_CT_F_REPLIED)) timeout = to.tcp_syn;
            else timeout = to.tcp_established;
        }
        if (now_ns > v.last_seen_ns && now_ns - v.last_seen_ns > uint64_t{timeout} * 1000000000ull) {
            ++st.expired;
            return true;
        }
        return false;
    });
    if (!r) return r.error();
    return st;
}

namespace {

class BpfCtTable final : public CtTable {
public:
    explicit BpfCtTable(std::string pin) : pin_(std::move(pin)) {}

    Result<uint64_t> sweep(const std::function<bool(const skiff_ct_key&, const skiff_ct_value&)>& f) override {
        if (!fd_.valid()) {
            SKIFF_ASSIGN_OR_RETURN(fd_, bpf::open_pinned_map(pin_, SKIFF_MAP_CT));
        }
        std::vector<skiff_ct_key> doomed;
        uint64_t n = 0;
        SKIFF_TRY((bpf::for_each_entry<skiff_ct_key, skiff_ct_value>(fd_.get(), "conntrack",
                                                                    [&](const auto& k, const auto& v) {
                                                                        ++n;
                                                                        if (f(k, v)) doomed.push_back(k);
                                                                    })));
        // Delete after the walk: deleting the cursor's key would restart it.
        for (const auto& k : doomed) bpf_map_delete_elem(fd_.get(), &k);
        return n;
    }

private:
    std::string pin_;
    UniqueFd fd_;
};

}  // namespace

std::unique_ptr<CtTable> make_bpf_ct_table(const std::string& pin_dir) { return std::make_unique<BpfCtTable>(pin_dir); }

uint64_t ct_evictions(const CtAccount& from, const CtAccount& to) {
    auto d = [](uint64_t a, uint64_t b) { return static_cast<int64_t>(a - b); };
    int64_t gone = d(to.inserted, from.inserted) - d(to.removed_datapath, from.removed_datapath) -
                   d(to.removed_agent, from.removed_agent) - d(to.present, from.present);
    return gone > 0 ? static_cast<uint64_t>(gone) : 0;
}

}  // namespace skiff::agent
