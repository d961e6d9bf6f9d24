// pinned_program()/load_program(): a node loads each object version once,
// and every (re)load shares the maps pinned in the node's pin directory.
#include <algorithm>

#include "datapath/tc.h"
#include "bpf_test_env.h"

// Every map id a program uses is one of the pinned maps (programs need not
// use all: skiff_revnat is for the control plane).
static ::testing::AssertionResult uses_only(const std::vector<uint32_t>& prog, const std::vector<uint32_t>& pinned) {
    for (uint32_t id : prog)
        if (std::find(pinned.begin(), pinned.end(), id) == pinned.end())
            return ::testing::AssertionFailure() << "map id " << id << " is not pinned";
    if (prog.empty()) return ::testing::AssertionFailure() << "the program uses no maps";
    return ::testing::AssertionSuccess();
}

// Every map the datapath pins (maps/skiff_maps.h).
static const char* const kAllMaps[] = {
    SKIFF_MAP_ENDPOINTS, SKIFF_MAP_METRICS,     SKIFF_MAP_NODES,    SKIFF_MAP_SERVICES, SKIFF_MAP_BACKENDS,
    SKIFF_MAP_REVNAT,    SKIFF_MAP_CT,          SKIFF_MAP_AFFINITY, SKIFF_MAP_CONFIG,   SKIFF_MAP_SOCK_REVNAT,
    SKIFF_MAP_MAGLEV,    SKIFF_MAP_SNAT,        SKIFF_MAP_NOMASQ,   SKIFF_MAP_EVENTS,   SKIFF_MAP_TRACE,
    SKIFF_MAP_FRAGS,     SKIFF_MAP_POD_SOURCES, SKIFF_MAP_NEXTHOPS};

namespace skiff::bpftest {
namespace {

Result<uint32_t> map_id_of(int fd) {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return Error::errno_("map info");
    return info.id;
}

struct ProgInfo {
    uint32_t id = 0;
    uint32_t type = 0;
    std::vector<uint32_t> map_ids;  // sorted
};

Result<ProgInfo> prog_info_of(int fd) {
    uint32_t ids[16] = {};
    bpf_prog_info info{};
    info.nr_map_ids = 16;
    info.map_ids = reinterpret_cast<uintptr_t>(ids);
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return Error::errno_("prog info");
    ProgInfo p{info.id, info.type, {}};
    p.map_ids.assign(ids, ids + std::min<uint32_t>(info.nr_map_ids, 16));
    std::sort(p.map_ids.begin(), p.map_ids.end());
    return p;
}

class PinningTest : public BpfProgramTest {
protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(enter_test_net());
        ASSERT_NO_FATAL_FAILURE(create_pins());
    }

    // Ids of the maps currently pinned under their names, sorted.
    std::vector<uint32_t> pinned_map_ids() {
        std::vector<uint32_t> ids;
        for (const char* name : kAllMaps) {
            auto fd = datapath::open_pinned_map(pins_.path(), name);
            EXPECT_TRUE(fd.ok()) << fd.error().message;
            if (!fd.ok()) continue;
            auto id = map_id_of(fd->get());
            EXPECT_TRUE(id.ok()) << id.error().message;
            if (id.ok()) ids.push_back(*id);
        }
        std::sort(ids.begin(), ids.end());
        return ids;
    }

    ProgInfo info(const UniqueFd& fd) {
        auto i = prog_info_of(fd.get());
        EXPECT_TRUE(i.ok()) << i.error().message;
        return i.ok() ? *i : ProgInfo{};
    }

    std::vector<std::string> pin_dir_entries() {
        auto l = list_dir_entries(pins_.path());
        std::sort(l.begin(), l.end());
        return l;
    }

    static std::vector<std::string> list_dir_entries(const std::string& dir) {
        std::vector<std::string> out;
        if (DIR* d = ::opendir(dir.c_str())) {
            while (dirent* e = ::readdir(d))
                if (std::string n = e->d_name; n != "." && n != "..") out.push_back(n);
            ::closedir(d);
        }
        return out;
    }
};

TEST_F(PinningTest, PinnedProgramPinsProgramAndMapsByName) {
    auto prog = datapath::pinned_program(datapath::Program::FromPod, pins_.path());
    ASSERT_TRUE(prog.ok()) << prog.error().message;
    const std::string prog_pin = datapath::program_pin_name(datapath::Program::FromPod);
    EXPECT_EQ(prog_pin.rfind("prog_from_pod_", 0), 0u) << prog_pin;
    std::vector<std::string> want{prog_pin};
    want.insert(want.end(), std::begin(kAllMaps), std::end(kAllMaps));
    std::sort(want.begin(), want.end());
    EXPECT_EQ(::testing::PrintToString(pin_dir_entries()), ::testing::PrintToString(want));

    ProgInfo p = info(*prog);
    EXPECT_EQ(p.type, BPF_PROG_TYPE_SCHED_CLS);
    EXPECT_TRUE(uses_only(p.map_ids, pinned_map_ids())) << "the program must use only the pinned maps";
}

TEST_F(PinningTest, SecondPinnedProgramCallReturnsTheSameProgram) {
    auto first = datapath::pinned_program(datapath::Program::FromPod, pins_.path());
    ASSERT_TRUE(first.ok()) << first.error().message;
    auto second = datapath::pinned_program(datapath::Program::FromPod, pins_.path());
    ASSERT_TRUE(second.ok()) << second.error().message;
    EXPECT_NE(first->get(), second->get()) << "each call hands out its own fd";
    auto id1 = datapath::prog_id_of(first->get());
    auto id2 = datapath::prog_id_of(second->get());
    ASSERT_TRUE(id1.ok() && id2.ok());
    EXPECT_NE(*id1, 0u);
    EXPECT_EQ(*id1, *id2) << "the second call must reuse the pinned program, not load again";
    EXPECT_TRUE(uses_only(info(*second).map_ids, pinned_map_ids()));
}

TEST_F(PinningTest, LoadingAgainReusesThePinnedMaps) {
    auto first = datapath::pinned_program(datapath::Program::FromPod, pins_.path());
    ASSERT_TRUE(first.ok()) << first.error().message;
    const std::vector<uint32_t> maps = pinned_map_ids();
    ASSERT_EQ(maps.size(), std::size(kAllMaps));
    const ProgInfo p1 = info(*first);

    // A second load of the same object (what a new program version or a
    // restarted loader does) must pick up the pinned maps, not create new ones.
    auto again = datapath::load_program(datapath::Program::FromPod, pins_.path());
    ASSERT_TRUE(again.ok()) << again.error().message;
    const ProgInfo p2 = info(*again);
    EXPECT_NE(p2.id, p1.id) << "load_program loads a new program instance";
    EXPECT_TRUE(uses_only(p2.map_ids, maps));
    EXPECT_EQ(::testing::PrintToString(pinned_map_ids()), ::testing::PrintToString(maps))
        << "the pinned maps must not have been replaced";

    // And with the program pin gone, pinned_program loads and pins anew,
    // still on the same maps.
    const std::string prog_path = pins_.path() + "/" + datapath::program_pin_name(datapath::Program::FromPod);
    ASSERT_EQ(::unlink(prog_path.c_str()), 0) << std::strerror(errno);
    auto third = datapath::pinned_program(datapath::Program::FromPod, pins_.path());
    ASSERT_TRUE(third.ok()) << third.error().message;
    const ProgInfo p3 = info(*third);
    EXPECT_NE(p3.id, p1.id);
    EXPECT_TRUE(uses_only(p3.map_ids, maps));
    auto fourth = datapath::pinned_program(datapath::Program::FromPod, pins_.path());
    ASSERT_TRUE(fourth.ok()) << fourth.error().message;
    EXPECT_EQ(info(*fourth).id, p3.id);
}

TEST_F(PinningTest, ReloadedProgramSeesStateWrittenThroughTheFirstLoad) {
    auto first = datapath::pinned_program(datapath::Program::FromPod, pins_.path());
    ASSERT_TRUE(first.ok()) << first.error().message;
    {
        auto eps = datapath::EndpointMap::open(pins_.path());
        ASSERT_TRUE(eps.ok()) << eps.error().message;
        skiff_endpoint_info src{};
        src.ifindex = static_cast<uint32_t>(net_->src.host.ifindex);
        src.flags = SKIFF_EP_F_LOCAL;
        skiff_endpoint_info dst{};
        dst.ifindex = static_cast<uint32_t>(net_->dst.host.ifindex);
        dst.flags = SKIFF_EP_F_LOCAL;
        std::memcpy(dst.pod_mac, net_->dst.pod.mac.data(), 6);
        std::memcpy(dst.host_mac, net_->dst.host.mac.data(), 6);
        ASSERT_TRUE(eps->upsert(Ipv4(0x0a000001), src).ok());
        ASSERT_TRUE(eps->upsert(Ipv4(0x0a000002), dst).ok());
    }
    auto second = datapath::load_program(datapath::Program::FromPod, pins_.path());
    ASSERT_TRUE(second.ok()) << second.error().message;

    Ipv4Spec s;
    s.src = Ipv4(0x0a000001);
    s.dst = Ipv4(0x0a000002);
    s.l4 = icmp_echo(1, 1, pattern(8));
    Bytes frame = ethernet(net_->src.host.mac, net_->src.pod.mac, kEthPIp, ipv4_packet(s));
    RunResult r1 = test_run(first->get(), frame, net_->src.host.ifindex);
    RunResult r2 = test_run(second->get(), frame, net_->src.host.ifindex);
    ASSERT_EQ(r1.err, 0) << std::strerror(-r1.err);
    ASSERT_EQ(r2.err, 0) << std::strerror(-r2.err);
    EXPECT_EQ(r1.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
    EXPECT_EQ(r2.retval, static_cast<uint32_t>(TC_ACT_REDIRECT))
        << "the reloaded program must see the endpoints written before";
    EXPECT_EQ(hex(r1.data), hex(r2.data));

    auto met = datapath::MetricsMap::open(pins_.path());
    ASSERT_TRUE(met.ok()) << met.error().message;
    auto c = read_counters(*met);
    ASSERT_TRUE(c.ok()) << c.error().message;
    Counters want{{{SKIFF_FWD_LOCAL_POD, SKIFF_DIR_EGRESS}, Count{2, 2 * frame.size()}}};
    EXPECT_EQ(describe(*c), describe(want)) << "both programs count into the one pinned map";
}

// Pins of a build with other map layouts (here skiff_config before it
// grew to 32 bytes): the load names the map and what differs, pins nothing
// and leaves the old map alone.
TEST_F(PinningTest, PinnedMapWithAnotherLayoutIsRefusedByName) {
    const std::string path = pins_.path() + "/" + SKIFF_MAP_CONFIG;
    UniqueFd old(bpf_map_create(BPF_MAP_TYPE_ARRAY, SKIFF_MAP_CONFIG, 4, 24, 1, nullptr));
    ASSERT_TRUE(old.valid()) << std::strerror(errno);
    ASSERT_EQ(bpf_obj_pin(old.get(), path.c_str()), 0) << std::strerror(errno);
    auto prog = datapath::pinned_program(datapath::Program::FromPod, pins_.path());
    ASSERT_FALSE(prog.ok());
    EXPECT_EQ(prog.error().code, EINVAL);
    EXPECT_NE(prog.error().message.find(path + " has another layout: value size 24 (this build: " +
                                        std::to_string(sizeof(skiff_config)) + ")"),
              std::string::npos)
        << prog.error().message;
    EXPECT_NE(prog.error().message.find("remove " + pins_.path()), std::string::npos) << prog.error().message;
    EXPECT_EQ(::testing::PrintToString(pin_dir_entries()),
              ::testing::PrintToString(std::vector<std::string>{SKIFF_MAP_CONFIG}));
    auto still = map_id_of(UniqueFd(bpf_obj_get(path.c_str())).get());
    auto was = map_id_of(old.get());
    ASSERT_TRUE(still.ok() && was.ok());
    EXPECT_EQ(*still, *was);
}

TEST_F(PinningTest, PinDirIsRemovedCompletely) {
    std::string path;
    {
        PinDir d;
        path = d.path();
        ASSERT_TRUE(d.create().ok());
        auto prog = datapath::pinned_program(datapath::Program::FromPod, d.path());
        ASSERT_TRUE(prog.ok()) << prog.error().message;
        EXPECT_EQ(list_dir_entries(path).size(), std::size(kAllMaps) + 1);
        EXPECT_EQ(d.remove(), "");  // even while fds are still open
        struct stat st {};
        EXPECT_NE(::stat(path.c_str(), &st), 0);
    }
    struct stat st {};
    EXPECT_NE(::stat(path.c_str(), &st), 0);
}

}  // namespace
}  // namespace skiff::bpftest
