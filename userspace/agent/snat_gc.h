// Masquerade state: the no-masquerade destination set, and garbage
// collection of NAT entry pairs (egress + ingress, expired together).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "datapath/map_layout.h"
#include "common/ipv4.h"
#include "common/result.h"
#include "ct_gc.h"

namespace skiff::agent {

using NatEntries = std::map<skiff_ct_key, skiff_nat_value, CtKeyLess>;

// The INGRESS key of a flow's EGRESS entry (the reply's tuple: {dst, node,
// dst port, NAT port}); the datapath writes the pair so (bpf/lib/snat.h).
skiff_ct_key snat_partner(const skiff_ct_key& k, const skiff_nat_value& v);

// The masquerade's maps: the NAT table and the no-masquerade set.
class SnatTable {
public:
    virtual ~SnatTable() = default;
    virtual Result<NatEntries> list() = 0;
    virtual Result<std::optional<skiff_nat_value>> lookup(const skiff_ct_key& k) = 0;
    virtual Status remove(const skiff_ct_key& k) = 0;  // absent is fine
    // Keep the no-masquerade set equal to want (writes only differences).
    virtual Status sync_nomasq(const std::set<Ipv4Prefix>& want) = 0;
};

struct SnatGcStats {
    uint64_t flows = 0, expired = 0, orphans = 0;
};

// A flow's two entries go together, when the later of their last-seen
// times is older than the flow's timeout (TCP: closing, never answered,
// answered; UDP; ICMP echo as UDP). Both are read again just before they
// are deleted: a flow revived since the listing (a new connection on the
// tuple) is kept.
Result<SnatGcStats> snat_gc(SnatTable& t, const CtTimeouts& to, uint64_t now_ns);

}  // namespace skiff::agent
