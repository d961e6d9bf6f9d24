// Masquerade state: the no-masquerade destination set, and garbage
// collection of NAT entry pairs (egress + ingress, expired together).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "bpf/map_layout.h"
#include "common/ipv4.h"
#include "common/result.h"
#include "ct_gc.h"

namespace skiff::agent {

using NatEntries = std::map<skiff_ct_key, skiff_nat_value, CtKeyLess>;

class SnatTable {
public:
    virtual ~SnatTable() = default;
    virtual Result<NatEntries> list() = 0;
    virtual Result<std::optional<skiff_nat_value>> lookup(const skiff_ct_key& k) = 0;
    virtual Status remove(const skiff_ct_key& k) = 0;  // absent is fine
};
std::unique_ptr<SnatTable> make_bpf_snat_table(const std::string& pin_dir);

struct SnatGcStats {
    uint64_t flows = 0, expired = 0, orphans = 0;
};

// A flow's two entries go together, when the later of their last-seen
// times is older than the flow's timeout (TCP: closing, never answered,
// answered; UDP; ICMP echo as UDP). Both are read again just before they
// are deleted: a flow revived since the listing (a new connection on the
// tuple) is kept.
Result<SnatGcStats> snat_gc(SnatTable& t, const CtTimeouts& to, uint64_t now_ns);

// Keep the no-masquerade LPM set equal to want (writes only differences).
Status sync_nomasq(const std::string& pin_dir, const std::set<Ipv4Prefix>& want);

}  // namespace skiff::agent
