// The agent's kernel access, made here and nowhere else: the pinned BPF
// maps and the routes the agent programs, each behind the interface its
// logic uses, so that logic (node and service sync, GC, masquerade,
// metrics) is unit-tested with fakes.
#pragma once

#include <memory>
#include <string>

#include "agent_metrics.h"
#include "ct_gc.h"
#include "node_sync.h"
#include "service_sync.h"
#include "snat_gc.h"

namespace skiff::agent {

// What the agent reads of the datapath besides its tables: the endpoint
// count and the packet counters for /metrics, the conntrack counters for
// the GC's eviction accounting.
class DatapathReader {
public:
    virtual ~DatapathReader() = default;
    virtual DatapathStats stats() = 0;                        // what could not be read is left out
    virtual std::optional<CtDatapathCounts> ct_counts() = 0;  // nullopt: unreadable
};

std::unique_ptr<NodeTable> make_bpf_node_table(const std::string& pin_dir);
// tunnel_ifindex: the node's tunnel device, 0 when there is none.
std::unique_ptr<RouteTable> make_kernel_route_table(int uplink_ifindex, int tunnel_ifindex);
std::unique_ptr<ServiceTables> make_bpf_service_tables(const std::string& pin_dir);
std::unique_ptr<CtTable> make_bpf_ct_table(const std::string& pin_dir);
std::unique_ptr<SnatTable> make_bpf_snat_table(const std::string& pin_dir);
std::unique_ptr<DatapathReader> make_bpf_datapath_reader(const std::string& pin_dir);

}  // namespace skiff::agent
