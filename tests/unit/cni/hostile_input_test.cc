// Hostile input to the plugin's door: nothing escapes run_plugin() but one
// error object, bytes that are not UTF-8 never break an output, the
// checks that look outside the config refuse before anything is touched;
// and the helpers behind them (UTF-8, temporary files, pin paths).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "datapath/pins.h"
#include "cni/config.h"
#include "cni/delegate.h"
#include "cni/plugin.h"
#include "cni/result.h"
#include "common/files.h"
#include "common/utf8.h"
#include "test_support.h"

namespace skiff::cni {
namespace {

using nlohmann::json;
using namespace skiff_test;

class HostileInputTest : public PluginFixture {};

json parse_output(const PluginOutput& out) {
    json j = json::parse(out.stdout_text, nullptr, false);
    EXPECT_TRUE(j.is_object()) << out.stdout_text;
    return j;
}

TEST_F(HostileInputTest, AnExceptionBecomesOneErrorObject) {
    deps.datapath = [](const std::string&) -> std::unique_ptr<Datapath> { throw std::runtime_error("boom"); };
    auto out = run("STATUS", conf().dump());
    EXPECT_NE(out.exit_code, 0);
    auto j = parse_output(out);
    EXPECT_EQ(j["code"], kInternal);
    EXPECT_EQ(j["details"], "boom");

    deps.datapath = [](const std::string&) -> std::unique_ptr<Datapath> { throw 42; };
    out = run("STATUS", conf().dump());
    EXPECT_EQ(parse_output(out)["code"], kInternal);
}

TEST_F(HostileInputTest, ErrorTextThatIsNotUtf8IsReplaced) {
    auto j = json::parse(wire(error_to_json(CniError{kInternal, "m\xff", "d\xc3("}, "1.0.0")));
    EXPECT_EQ(j["msg"], "m\xef\xbf\xbd");
    EXPECT_EQ(j["details"].get<std::string>().substr(0, 1), "d");
    // A delegate's raw stderr in the details of a DEL error.
    deps.delegate = [](const std::string&, const std::string&, const Env&, const std::string&) -> CniResult<json> {
        return CniError{kInternal, "ipam failed", std::string("\xff\xfe stderr")};
    };
    json c = conf();
    c.erase("podCIDR");
    c["ipam"] = {{"type", "host-local"}};
    auto out = run("DEL", c.dump());
    j = parse_output(out);
    EXPECT_EQ(j["msg"], "ipam failed");
    EXPECT_EQ(j["details"], "\xef\xbf\xbd\xef\xbf\xbd stderr");
}

TEST_F(HostileInputTest, LogFileOnStdoutIsRefusedFirst) {
    std::vector<std::string> asked;
    deps.is_stdout = [&](const std::string& p) {
        asked.push_back(p);
        return p == "/dev/stdout";
    };
    json c = conf();
    c["logFile"] = "/dev/stdout";
    auto out = run("ADD", c.dump(), "ctr1", "eth0", "/proc/self/ns/net");
    auto j = parse_output(out);
    EXPECT_EQ(j["code"], kInvalidConfig);
    EXPECT_NE(j["msg"].get<std::string>().find("stdout"), std::string::npos);
    EXPECT_EQ(asked, std::vector<std::string>{"/dev/stdout"});
    EXPECT_TRUE(dp.pin_paths.empty());
    EXPECT_FALSE(std::filesystem::exists(state_dir()));
    c["logFile"] = tmp.sub("plugin.log");
    out = run("STATUS", c.dump());
    EXPECT_EQ(out.exit_code, 0) << out.stdout_text;
}

TEST_F(HostileInputTest, PinPathProblemIsAConfigErrorBeforeAnyWork) {
    deps.pin_dir_problem = [](const std::string& p) { return "pin path " + p + " is not on a bpf file system"; };
    for (const char* cmd : {"ADD", "DEL", "CHECK", "GC", "STATUS"}) {
        json c = conf();
        if (std::string(cmd) == "CHECK") c["prevResult"] = {{"cniVersion", "1.1.0"}, {"ips", json::array()}};
        auto out = run(cmd, c.dump(), "ctr1", "eth0", "/proc/self/ns/net");
        auto j = parse_output(out);
        EXPECT_EQ(j["code"], kInvalidConfig) << cmd;
        EXPECT_NE(j["msg"].get<std::string>().find("pinPath"), std::string::npos) << cmd;
    }
    EXPECT_EQ(dp.load_calls, 0);
    EXPECT_TRUE(pn.links.empty());
    EXPECT_FALSE(std::filesystem::exists(state_dir()));
    EXPECT_TRUE(delegate_calls.empty());
}

TEST_F(HostileInputTest, RunByItsOwnDelegationChainIsALoop) {
    extra_env[kDelegationMarker] = "4242";
    for (const char* cmd : {"ADD", "DEL", "CHECK", "GC", "STATUS"}) {
        auto out = run(cmd, conf().dump(), "ctr1", "eth0", "/proc/self/ns/net");
        auto j = parse_output(out);
        EXPECT_EQ(j["code"], kInvalidConfig) << cmd;
        EXPECT_NE(j["msg"].get<std::string>().find("loop"), std::string::npos) << cmd;
    }
    EXPECT_EQ(run("VERSION", std::string()).exit_code, 0);
    EXPECT_TRUE(dp.pin_paths.empty());
    EXPECT_FALSE(std::filesystem::exists(state_dir()));
}

TEST(ResultInts, OutOfRangeIsAbsentNotWrapped) {
    auto r = parse_result(json::parse(R"({"cniVersion":"1.1.0",
        "ips":[{"address":"10.0.0.2/32","interface":4294967297}],
        "routes":[{"dst":"0.0.0.0/0","table":4294967296,"mtu":18446744073709551615,"priority":-4294967296}]})"));
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->ips[0].interface.has_value());
    EXPECT_FALSE(r->routes[0].table.has_value());
    EXPECT_FALSE(r->routes[0].mtu.has_value());
    EXPECT_FALSE(r->routes[0].priority.has_value());
}

TEST(ConfigInts, MtuOutOfRangeIsNamedAsWritten) {
    for (const char* mtu : {"18446744073709551615", "-9223372036854775808", "65536", "67", "20"}) {
        auto r = parse_netconf(decode_stdin(
            std::string(R"({"cniVersion":"1.0.0","name":"n","podCIDR":"10.0.0.0/24","mtu":)") + mtu + "}"));
        ASSERT_FALSE(r.ok()) << mtu;
        EXPECT_NE(r.error().msg.find(mtu), std::string::npos) << r.error().msg;
    }
}

TEST(Utf8, WellFormedOnly) {
    for (const std::string& ok :
         {std::string(""), std::string("eth0"), std::string("\xc3\xa9"), std::string("\xe2\x82\xac"),
          std::string("\xf0\x9f\x98\x80"), std::string("\xef\xbf\xbd"), std::string("\xf4\x8f\xbf\xbf")})
        EXPECT_TRUE(valid_utf8(ok)) << ok;
    for (const std::string& bad :
         {std::string("\xff"), std::string("\xc3"), std::string("\xc3("), std::string("\xc0\xaf"),
          std::string("\xe0\x80\xaf"), std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80"),
          std::string("\xf0\x9f\x98"), std::string("a\x80"), std::string("\xf8\x88\x80\x80\x80")})
        EXPECT_FALSE(valid_utf8(bad)) << bad;
}

pid_t a_dead_pid() {
    pid_t p = ::fork();
    if (p == 0) ::_exit(0);
    ::waitpid(p, nullptr, 0);
    return p;
}

TEST(TempFiles, OnlyThoseOfWritersThatAreGone) {
    TempDir tmp;
    auto touch = [&](const std::string& n) { std::ofstream(tmp.sub(n)) << "x"; };
    const std::string dead = std::to_string(a_dead_pid()), live = std::to_string(::getpid());
    touch("a.json.tmp." + dead + ".0");
    touch("a.json.tmp." + live + ".1");
    touch("a.json");
    touch("b.tmp.notapid.0");
    touch("c.tmp." + dead);
    EXPECT_EQ(remove_temp_files(tmp.path(), TempFiles::OfDeadWriters), 1u);
    EXPECT_FALSE(std::filesystem::exists(tmp.sub("a.json.tmp." + dead + ".0")));
    EXPECT_TRUE(std::filesystem::exists(tmp.sub("a.json.tmp." + live + ".1")));
    EXPECT_EQ(remove_temp_files(tmp.path(), TempFiles::All), 1u);
    EXPECT_TRUE(std::filesystem::exists(tmp.sub("a.json")));
    EXPECT_TRUE(std::filesystem::exists(tmp.sub("b.tmp.notapid.0")));
    EXPECT_TRUE(std::filesystem::exists(tmp.sub("c.tmp." + dead)));
}

TEST(TempFiles, AtomicWritesLeaveNone) {
    TempDir tmp;
    ASSERT_TRUE(write_file_atomic(tmp.sub("f"), "one").ok());
    ASSERT_TRUE(write_file_atomic(tmp.sub("f"), "two").ok());
    ASSERT_TRUE(create_file_exclusive(tmp.sub("g"), "three").ok());
    auto again = create_file_exclusive(tmp.sub("g"), "four");
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, EEXIST);
    EXPECT_EQ(*read_file(tmp.sub("f")), "two");
    EXPECT_EQ(*read_file(tmp.sub("g")), "three");
    EXPECT_EQ(*list_dir(tmp.path()), (std::vector<std::string>{"f", "g"}));
}

TEST(PinDirProblem, PathsOffBpffs) {
    TempDir tmp;
    std::ofstream(tmp.sub("file")) << "x";
    for (const std::string& bad :
         {std::string("relative"), std::string("/proc/self/mem"), std::string("/dev/null"), std::string("/sys/fs/bp"),
          std::string("/sys/fs/bpfx/skiff"), tmp.path(), tmp.sub("new/skiff"), tmp.sub("file"), tmp.sub("file/pins")})
        EXPECT_NE(datapath::pin_dir_problem(bad), "") << bad;
    // Nothing was created looking.
    EXPECT_FALSE(std::filesystem::exists(tmp.sub("new")));
    EXPECT_FALSE(std::filesystem::exists("/sys/fs/bpfx"));
}

}  // namespace
}  // namespace skiff::cni
