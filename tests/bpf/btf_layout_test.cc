// The map key/value layouts the C++ control plane compiles against
// (maps/skiff_maps.h via bpf/map_layout.h) must be byte-for-byte those the
// BPF objects were compiled with, as recorded in their BTF.
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "datapath/map_layout.h"
#include "datapath/objects.h"

namespace {

struct Member {
    std::string name;
    size_t offset;
    size_t size;
};

struct Layout {
    std::string name;
    size_t size;
    std::vector<Member> members;
};

#define SKIFF_MEMBER(T, m) \
    Member { #m, offsetof(T, m), sizeof(T::m) }

// Every struct of maps/skiff_maps.h but skiff_event: ring buffer records
// have no type in BTF (bpf_ringbuf_reserve() returns void *); its size is
// fixed by a static_assert in bpf/map_layout.h.
std::vector<Layout> cxx_layouts() {
    return {
        {"skiff_endpoint_key", sizeof(skiff_endpoint_key), {SKIFF_MEMBER(skiff_endpoint_key, ip)}},
        {"skiff_endpoint_info",
         sizeof(skiff_endpoint_info),
         {SKIFF_MEMBER(skiff_endpoint_info, ifindex), SKIFF_MEMBER(skiff_endpoint_info, flags),
          SKIFF_MEMBER(skiff_endpoint_info, pod_mac), SKIFF_MEMBER(skiff_endpoint_info, pad0),
          SKIFF_MEMBER(skiff_endpoint_info, host_mac), SKIFF_MEMBER(skiff_endpoint_info, pad1)}},
        {"skiff_metrics_value",
         sizeof(skiff_metrics_value),
         {SKIFF_MEMBER(skiff_metrics_value, packets), SKIFF_MEMBER(skiff_metrics_value, bytes)}},
        {"skiff_node_key",
         sizeof(skiff_node_key),
         {SKIFF_MEMBER(skiff_node_key, prefixlen), SKIFF_MEMBER(skiff_node_key, ip)}},
        {"skiff_node_info",
         sizeof(skiff_node_info),
         {SKIFF_MEMBER(skiff_node_info, node_ip), SKIFF_MEMBER(skiff_node_info, flags)}},
        {"skiff_service_key",
         sizeof(skiff_service_key),
         {SKIFF_MEMBER(skiff_service_key, vip), SKIFF_MEMBER(skiff_service_key, port),
          SKIFF_MEMBER(skiff_service_key, proto), SKIFF_MEMBER(skiff_service_key, pad0),
          SKIFF_MEMBER(skiff_service_key, slot), SKIFF_MEMBER(skiff_service_key, pad1)}},
        {"skiff_service_value",
         sizeof(skiff_service_value),
         {SKIFF_MEMBER(skiff_service_value, backend_id), SKIFF_MEMBER(skiff_service_value, count),
          SKIFF_MEMBER(skiff_service_value, revnat_id), SKIFF_MEMBER(skiff_service_value, flags),
          SKIFF_MEMBER(skiff_service_value, affinity_timeout)}},
        {"skiff_maglev_key",
         sizeof(skiff_maglev_key),
         {SKIFF_MEMBER(skiff_maglev_key, revnat_id), SKIFF_MEMBER(skiff_maglev_key, pad),
          SKIFF_MEMBER(skiff_maglev_key, index)}},
        {"skiff_l4_addr",
         sizeof(skiff_l4_addr),
         {SKIFF_MEMBER(skiff_l4_addr, ip), SKIFF_MEMBER(skiff_l4_addr, port), SKIFF_MEMBER(skiff_l4_addr, proto),
          SKIFF_MEMBER(skiff_l4_addr, pad)}},
        {"skiff_revnat_key",
         sizeof(skiff_revnat_key),
         {SKIFF_MEMBER(skiff_revnat_key, id), SKIFF_MEMBER(skiff_revnat_key, pad)}},
        {"skiff_ct_key",
         sizeof(skiff_ct_key),
         {SKIFF_MEMBER(skiff_ct_key, saddr), SKIFF_MEMBER(skiff_ct_key, daddr), SKIFF_MEMBER(skiff_ct_key, sport),
          SKIFF_MEMBER(skiff_ct_key, dport), SKIFF_MEMBER(skiff_ct_key, proto), SKIFF_MEMBER(skiff_ct_key, dir),
          SKIFF_MEMBER(skiff_ct_key, pad)}},
        {"skiff_ct_value",
         sizeof(skiff_ct_value),
         {SKIFF_MEMBER(skiff_ct_value, created_ns), SKIFF_MEMBER(skiff_ct_value, last_seen_ns),
          SKIFF_MEMBER(skiff_ct_value, packets), SKIFF_MEMBER(skiff_ct_value, bytes),
          SKIFF_MEMBER(skiff_ct_value, backend_id), SKIFF_MEMBER(skiff_ct_value, nat_addr),
          SKIFF_MEMBER(skiff_ct_value, snat_addr), SKIFF_MEMBER(skiff_ct_value, nat_port),
          SKIFF_MEMBER(skiff_ct_value, snat_port), SKIFF_MEMBER(skiff_ct_value, revnat_id),
          SKIFF_MEMBER(skiff_ct_value, flags), SKIFF_MEMBER(skiff_ct_value, pad)}},
        {"skiff_affinity_key",
         sizeof(skiff_affinity_key),
         {SKIFF_MEMBER(skiff_affinity_key, client), SKIFF_MEMBER(skiff_affinity_key, revnat_id),
          SKIFF_MEMBER(skiff_affinity_key, pad)}},
        {"skiff_affinity_value",
         sizeof(skiff_affinity_value),
         {SKIFF_MEMBER(skiff_affinity_value, last_used_ns), SKIFF_MEMBER(skiff_affinity_value, backend_id),
          SKIFF_MEMBER(skiff_affinity_value, slot), SKIFF_MEMBER(skiff_affinity_value, pad)}},
        {"skiff_config",
         sizeof(skiff_config),
         {SKIFF_MEMBER(skiff_config, node_ip), SKIFF_MEMBER(skiff_config, flags),
          SKIFF_MEMBER(skiff_config, netns_cookie), SKIFF_MEMBER(skiff_config, nat_port_min),
          SKIFF_MEMBER(skiff_config, nat_port_max), SKIFF_MEMBER(skiff_config, cluster_net),
          SKIFF_MEMBER(skiff_config, cluster_mask), SKIFF_MEMBER(skiff_config, tunnel_ifindex),
          SKIFF_MEMBER(skiff_config, tunnel_vni), SKIFF_MEMBER(skiff_config, tunnel_port),
          SKIFF_MEMBER(skiff_config, pad)}},
        {"skiff_nat_value",
         sizeof(skiff_nat_value),
         {SKIFF_MEMBER(skiff_nat_value, created_ns), SKIFF_MEMBER(skiff_nat_value, last_seen_ns),
          SKIFF_MEMBER(skiff_nat_value, packets), SKIFF_MEMBER(skiff_nat_value, bytes),
          SKIFF_MEMBER(skiff_nat_value, addr), SKIFF_MEMBER(skiff_nat_value, port),
          SKIFF_MEMBER(skiff_nat_value, flags), SKIFF_MEMBER(skiff_nat_value, pad)}},
        {"skiff_sock_revnat_key",
         sizeof(skiff_sock_revnat_key),
         {SKIFF_MEMBER(skiff_sock_revnat_key, cookie), SKIFF_MEMBER(skiff_sock_revnat_key, addr),
          SKIFF_MEMBER(skiff_sock_revnat_key, port), SKIFF_MEMBER(skiff_sock_revnat_key, pad)}},
        {"skiff_sock_revnat_value",
         sizeof(skiff_sock_revnat_value),
         {SKIFF_MEMBER(skiff_sock_revnat_value, vip), SKIFF_MEMBER(skiff_sock_revnat_value, port),
          SKIFF_MEMBER(skiff_sock_revnat_value, pad)}},
        {"skiff_frag_key",
         sizeof(skiff_frag_key),
         {SKIFF_MEMBER(skiff_frag_key, saddr), SKIFF_MEMBER(skiff_frag_key, daddr), SKIFF_MEMBER(skiff_frag_key, id),
          SKIFF_MEMBER(skiff_frag_key, proto), SKIFF_MEMBER(skiff_frag_key, pad)}},
        {"skiff_frag_value",
         sizeof(skiff_frag_value),
         {SKIFF_MEMBER(skiff_frag_value, addr), SKIFF_MEMBER(skiff_frag_value, pad)}},
        {"skiff_trace_result",
         sizeof(skiff_trace_result),
         {SKIFF_MEMBER(skiff_trace_result, reason), SKIFF_MEMBER(skiff_trace_result, action),
          SKIFF_MEMBER(skiff_trace_result, redirect_ifindex), SKIFF_MEMBER(skiff_trace_result, backend_id),
          SKIFF_MEMBER(skiff_trace_result, flags), SKIFF_MEMBER(skiff_trace_result, seq),
          SKIFF_MEMBER(skiff_trace_result, tunnel_remote), SKIFF_MEMBER(skiff_trace_result, tunnel_vni)}},
        {"skiff_pod_source",
         sizeof(skiff_pod_source),
         {SKIFF_MEMBER(skiff_pod_source, ifindex), SKIFF_MEMBER(skiff_pod_source, ip)}},
        {"skiff_nexthop_key",
         sizeof(skiff_nexthop_key),
         {SKIFF_MEMBER(skiff_nexthop_key, saddr), SKIFF_MEMBER(skiff_nexthop_key, node_ip)}},
        {"skiff_nexthop",
         sizeof(skiff_nexthop),
         {SKIFF_MEMBER(skiff_nexthop, expires), SKIFF_MEMBER(skiff_nexthop, ifindex), SKIFF_MEMBER(skiff_nexthop, mtu),
          SKIFF_MEMBER(skiff_nexthop, smac), SKIFF_MEMBER(skiff_nexthop, dmac), SKIFF_MEMBER(skiff_nexthop, pad)}},
    };
}

// Differences between the BTF struct `want.name` and `want`, one per line;
// empty when they agree (size, member names, order, offsets and sizes).
std::string compare_with_btf(const btf* b, const Layout& want) {
    std::string diff;
    auto add = [&](const std::string& s) { diff += want.name + ": " + s + "\n"; };
    int id = btf__find_by_name_kind(b, want.name.c_str(), BTF_KIND_STRUCT);
    if (id < 0) {
        add("no such struct in the BPF object's BTF");
        return diff;
    }
    const btf_type* t = btf__type_by_id(b, static_cast<uint32_t>(id));
    if (!t || !btf_is_struct(t)) {
        add("BTF type is not a struct");
        return diff;
    }
    if (t->size != want.size) add("size: BTF " + std::to_string(t->size) + ", C++ " + std::to_string(want.size));
    const unsigned n = btf_vlen(t);
    if (n != want.members.size())
        add("member count: BTF " + std::to_string(n) + ", C++ " + std::to_string(want.members.size()));
    const btf_member* m = btf_members(t);
    for (unsigned i = 0; i < n; ++i) {
        const char* raw = btf__name_by_offset(b, m[i].name_off);
        const std::string name = raw ? raw : "";
        const uint32_t bit_off = btf_member_bit_offset(t, i);
        const uint32_t bit_size = btf_member_bitfield_size(t, i);
        if (bit_size != 0 || bit_off % 8 != 0) add(name + ": bitfield in BTF");
        const long long size = btf__resolve_size(b, m[i].type);
        const Member* c = nullptr;
        for (const auto& cm : want.members)
            if (cm.name == name) c = &cm;
        if (!c) {
            add(name + ": in BTF at offset " + std::to_string(bit_off / 8) + " but not in C++");
            continue;
        }
        if (i < want.members.size() && want.members[i].name != name)
            add(name + ": BTF member #" + std::to_string(i) + " but C++ has " + want.members[i].name);
        if (bit_off / 8 != c->offset)
            add(name + ": offset BTF " + std::to_string(bit_off / 8) + ", C++ " + std::to_string(c->offset));
        if (size < 0 || static_cast<size_t>(size) != c->size)
            add(name + ": size BTF " + std::to_string(size) + ", C++ " + std::to_string(c->size));
    }
    for (const auto& cm : want.members) {
        bool found = false;
        for (unsigned i = 0; i < n; ++i) {
            const char* raw = btf__name_by_offset(b, m[i].name_off);
            if (raw && cm.name == raw) found = true;
        }
        if (!found) add(cm.name + ": in C++ but not in BTF");
    }
    return diff;
}

struct ObjectCloser {
    void operator()(bpf_object* o) const { bpf_object__close(o); }
};

class BtfLayoutTest : public ::testing::TestWithParam<skiff::datapath::Program> {
protected:
    void SetUp() override {
        skiff::datapath::ObjectBytes bytes = skiff::datapath::program_object(GetParam());
        ASSERT_NE(bytes.data, nullptr);
        ASSERT_GT(bytes.size, 0u);
        const std::string name(skiff::datapath::program_name(GetParam()));
        LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name.c_str());
        obj_.reset(bpf_object__open_mem(bytes.data, bytes.size, &opts));
        ASSERT_NE(obj_.get(), nullptr) << "open embedded object " << name << ": " << std::strerror(errno);
        btf_ = bpf_object__btf(obj_.get());
        ASSERT_NE(btf_, nullptr) << name << " has no BTF (compiled without -g?)";
    }

    std::unique_ptr<bpf_object, ObjectCloser> obj_;
    const btf* btf_ = nullptr;
};

TEST_P(BtfLayoutTest, MapLayoutsMatchTheCxxHeader) {
    for (const Layout& l : cxx_layouts()) EXPECT_EQ(compare_with_btf(btf_, l), "");
}

// The comparison itself must catch a moved field, a changed size, a renamed
// or a missing member: feed it deliberately wrong expectations.
TEST_P(BtfLayoutTest, ComparisonDetectsLayoutDrift) {
    Layout moved = cxx_layouts()[1];
    ASSERT_EQ(moved.members[2].name, "pod_mac");
    moved.members[2].offset += 1;
    EXPECT_NE(compare_with_btf(btf_, moved).find("pod_mac: offset"), std::string::npos);

    Layout grown = cxx_layouts()[2];
    grown.size += 8;
    EXPECT_NE(compare_with_btf(btf_, grown).find("size: BTF 16"), std::string::npos);

    Layout resized = cxx_layouts()[0];
    resized.members[0].size = 8;
    EXPECT_NE(compare_with_btf(btf_, resized).find("ip: size"), std::string::npos);

    Layout missing = cxx_layouts()[1];
    missing.members.pop_back();
    EXPECT_NE(compare_with_btf(btf_, missing).find("pad1: in BTF"), std::string::npos);

    Layout extra = cxx_layouts()[2];
    extra.members.push_back({"drops", 16, 8});
    EXPECT_NE(compare_with_btf(btf_, extra).find("drops: in C++ but not in BTF"), std::string::npos);

    Layout swapped = cxx_layouts()[2];
    std::swap(swapped.members[0], swapped.members[1]);
    EXPECT_NE(compare_with_btf(btf_, swapped), "");

    EXPECT_NE(compare_with_btf(btf_, Layout{"skiff_no_such_struct", 4, {}}), "");
}

// The maps' declared key/value types are these structs (not just some
// same-named type elsewhere in the object).
TEST_P(BtfLayoutTest, MapsUseTheSharedTypes) {
    struct Want {
        const char* map;
        size_t key;
        size_t value;
    };
    for (const Want& w : {Want{SKIFF_MAP_ENDPOINTS, sizeof(skiff_endpoint_key), sizeof(skiff_endpoint_info)},
                          Want{SKIFF_MAP_POD_SOURCES, sizeof(uint32_t), sizeof(skiff_pod_source)},
                          Want{SKIFF_MAP_NEXTHOPS, sizeof(skiff_nexthop_key), sizeof(skiff_nexthop)},
                          Want{SKIFF_MAP_METRICS, sizeof(uint32_t), sizeof(skiff_metrics_value)}}) {
        SCOPED_TRACE(w.map);
        bpf_map* m = bpf_object__find_map_by_name(obj_.get(), w.map);
        ASSERT_NE(m, nullptr);
        EXPECT_EQ(bpf_map__key_size(m), w.key);
        EXPECT_EQ(bpf_map__value_size(m), w.value);
    }
    bpf_map* metrics = bpf_object__find_map_by_name(obj_.get(), SKIFF_MAP_METRICS);
    ASSERT_NE(metrics, nullptr);
    EXPECT_EQ(bpf_map__max_entries(metrics), SKIFF_METRICS_MAX);
}

INSTANTIATE_TEST_SUITE_P(AllPrograms, BtfLayoutTest, ::testing::ValuesIn(skiff::datapath::all_programs()),
                         [](const ::testing::TestParamInfo<skiff::datapath::Program>& p) {
                             return std::string(skiff::datapath::program_name(p.param));
                         });

}  // namespace
