// parse_env: CNI_* variables per command, container IDs, interface names,
// CNI_ARGS (DESIGN.md section 6, items 2, 3 and 6).
#include "cni/env.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace skiff::cni {
namespace {

using skiff_test::FakeEnv;

FakeEnv full(const std::string& cmd) {
    FakeEnv e;
    e.vars = {{"CNI_COMMAND", cmd},
              {"CNI_CONTAINERID", "0123abcd"},
              {"CNI_NETNS", "/var/run/netns/pod1"},
              {"CNI_IFNAME", "eth0"},
              {"CNI_PATH", "/opt/cni/bin:/usr/libexec/cni"}};
    return e;
}

int code_of(const FakeEnv& e) {
    auto r = parse_env(e.getenv());
    return r.ok() ? 0 : r.error().code;
}

TEST(ParseEnv, AddWithEverything) {
    auto e = full("ADD");
    auto r = parse_env(e.getenv());
    ASSERT_TRUE(r.ok()) << r.error().msg;
    EXPECT_EQ(r->command, Command::Add);
    EXPECT_EQ(r->command_name, "ADD");
    EXPECT_EQ(r->container_id, "0123abcd");
    EXPECT_EQ(r->netns, "/var/run/netns/pod1");
    EXPECT_EQ(r->ifname, "eth0");
    EXPECT_EQ(r->path, "/opt/cni/bin:/usr/libexec/cni");
    EXPECT_TRUE(r->args.empty());
}

TEST(ParseEnv, CommandNames) {
    const std::pair<const char*, Command> cmds[] = {{"ADD", Command::Add},       {"DEL", Command::Del},
                                                    {"CHECK", Command::Check},   {"GC", Command::Gc},
                                                    {"STATUS", Command::Status}, {"VERSION", Command::Version}};
    for (auto [name, cmd] : cmds) {
        auto e = full(name);
        auto r = parse_env(e.getenv());
        ASSERT_TRUE(r.ok()) << name << ": " << r.error().msg;
        EXPECT_EQ(r->command, cmd) << name;
    }
}

TEST(ParseEnv, InvalidCommandIsCode4) {
    FakeEnv none;
    EXPECT_EQ(code_of(none), kInvalidEnv);
    for (const char* c : {"", "add", "Add", "FOO", "ADD ", "DELETE"}) {
        auto e = full(c);
        EXPECT_EQ(code_of(e), kInvalidEnv) << "'" << c << "'";
    }
}

TEST(ParseEnv, RequiredVarsPerCommand) {
    for (const char* cmd : {"ADD", "CHECK"}) {
        for (const char* var : {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"}) {
            auto e = full(cmd);
            e.vars.erase(var);
            EXPECT_EQ(code_of(e), kInvalidEnv) << cmd << " without " << var;
            e = full(cmd);
            e.vars[var] = "";
            EXPECT_EQ(code_of(e), kInvalidEnv) << cmd << " with empty " << var;
        }
    }
    for (const char* var : {"CNI_CONTAINERID", "CNI_IFNAME"}) {
        auto e = full("DEL");
        e.vars.erase(var);
        EXPECT_EQ(code_of(e), kInvalidEnv) << "DEL without " << var;
    }
    // DEL works without a netns (it may be gone already).
    auto del = full("DEL");
    del.vars.erase("CNI_NETNS");
    auto r = parse_env(del.getenv());
    ASSERT_TRUE(r.ok()) << r.error().msg;
    EXPECT_EQ(r->netns, "");
    // CNI_PATH is optional for our own commands.
    auto add = full("ADD");
    add.vars.erase("CNI_PATH");
    EXPECT_EQ(code_of(add), 0);
}

// The spec: code 4 messages must name the invalid variables.
TEST(ParseEnv, ErrorsNameTheVariable) {
    auto msg = [](const FakeEnv& e) {
        auto r = parse_env(e.getenv());
        return r.ok() ? std::string("<ok>") : r.error().msg;
    };
    FakeEnv none;
    EXPECT_NE(msg(none).find("CNI_COMMAND"), std::string::npos);
    auto e = full("ADD");
    e.vars.erase("CNI_NETNS");
    e.vars.erase("CNI_IFNAME");
    EXPECT_NE(msg(e).find("CNI_NETNS"), std::string::npos) << msg(e);
    EXPECT_NE(msg(e).find("CNI_IFNAME"), std::string::npos) << msg(e);
    e = full("ADD");
    e.vars["CNI_CONTAINERID"] = "a/b";
    EXPECT_NE(msg(e).find("CNI_CONTAINERID"), std::string::npos) << msg(e);
    e = full("ADD");
    e.vars["CNI_IFNAME"] = "a:b";
    EXPECT_NE(msg(e).find("CNI_IFNAME"), std::string::npos) << msg(e);
    e = full("ADD");
    e.vars["CNI_ARGS"] = "junk";
    EXPECT_NE(msg(e).find("CNI_ARGS"), std::string::npos) << msg(e);
    e.vars["CNI_ARGS"] = "FOO=1";
    EXPECT_NE(msg(e).find("FOO"), std::string::npos) << msg(e);
}

TEST(ParseEnv, NodeLevelCommandsNeedOnlyTheCommand) {
    for (const char* cmd : {"GC", "STATUS", "VERSION"}) {
        FakeEnv e;
        e.vars["CNI_COMMAND"] = cmd;
        EXPECT_EQ(code_of(e), 0) << cmd;
        // Container variables are not validated for them.
        e.vars["CNI_IFNAME"] = "bad/name";
        e.vars["CNI_ARGS"] = "junk";
        EXPECT_EQ(code_of(e), 0) << cmd;
    }
}

TEST(ParseEnv, ContainerIdCharacters) {
    for (const char* ok : {"abc", "0123456789abcdef", "pod_1.a-b", "A"}) {
        auto e = full("ADD");
        e.vars["CNI_CONTAINERID"] = ok;
        EXPECT_EQ(code_of(e), 0) << ok;
    }
    for (const char* bad : {"-abc", ".abc", "_abc", "a/b", "../x", "a b", "a;b", "a:b", "a\tb"}) {
        auto e = full("DEL");
        e.vars["CNI_CONTAINERID"] = bad;
        EXPECT_EQ(code_of(e), kInvalidEnv) << "'" << bad << "'";
    }
}

TEST(ParseEnv, IfnameRules) {
    for (const std::string& bad :
         {std::string(16, 'e'), std::string("."), std::string(".."), std::string("a/b"), std::string("/"),
          std::string("eth:0"), std::string("eth 0"), std::string("eth0\t"), std::string("\neth0"), std::string(" ")}) {
        for (const char* cmd : {"ADD", "DEL", "CHECK"}) {
            auto e = full(cmd);
            e.vars["CNI_IFNAME"] = bad;
            EXPECT_EQ(code_of(e), kInvalidEnv) << cmd << " ifname '" << bad << "'";
        }
    }
    for (const std::string& ok : {std::string(15, 'e'), std::string("net1"), std::string("e.0"), std::string("...")}) {
        auto e = full("ADD");
        e.vars["CNI_IFNAME"] = ok;
        EXPECT_EQ(code_of(e), 0) << "ifname '" << ok << "'";
    }
}

TEST(ParseEnv, IfnamesTheKernelOrJsonWouldChange) {
    // "%d" is a kernel name template; control characters and bytes that are
    // not UTF-8 cannot come back unchanged in the result.
    for (const std::string& bad :
         {std::string("eth%d"), std::string("%"), std::string("et\x01h"), std::string("eth\x7f"), std::string("et\xff"),
          std::string("\xc3("), std::string("\xed\xa0\x80"), std::string("\xf0\x82\x82\xac")}) {
        for (const char* cmd : {"ADD", "DEL", "CHECK"}) {
            auto e = full(cmd);
            e.vars["CNI_IFNAME"] = bad;
            EXPECT_EQ(code_of(e), kInvalidEnv) << cmd;
        }
    }
    auto e = full("ADD");
    e.vars["CNI_IFNAME"] = "n\xc3\xa9t0";  // UTF-8 is fine
    EXPECT_EQ(code_of(e), 0);
}

TEST(ParseEnv, NetnsThatIsNotUtf8) {
    auto e = full("ADD");
    e.vars["CNI_NETNS"] = "/run/netns/\xff";
    EXPECT_EQ(code_of(e), kInvalidEnv);
}

TEST(ParseEnv, NetnsMustBeAbsolute) {
    auto e = full("ADD");
    e.vars["CNI_NETNS"] = "var/run/netns/x";
    EXPECT_EQ(code_of(e), kInvalidEnv);
    e = full("DEL");
    e.vars["CNI_NETNS"] = "netns";
    EXPECT_EQ(code_of(e), kInvalidEnv);
}

TEST(ParseEnv, K8sArgsAreRead) {
    auto e = full("ADD");
    e.vars["CNI_ARGS"] =
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
        "K8S_POD_INFRA_CONTAINER_ID=0123abcd;K8S_POD_UID=5d1c-aa";
    auto r = parse_env(e.getenv());
    ASSERT_TRUE(r.ok()) << r.error().msg;
    EXPECT_EQ(r->arg("K8S_POD_NAMESPACE"), "default");
    EXPECT_EQ(r->arg("K8S_POD_NAME"), "web-0");
    EXPECT_EQ(r->arg("K8S_POD_INFRA_CONTAINER_ID"), "0123abcd");
    EXPECT_EQ(r->arg("K8S_POD_UID"), "5d1c-aa");
    EXPECT_EQ(r->arg("IgnoreUnknown"), "1");
    EXPECT_EQ(r->arg("NOPE"), "");
    EXPECT_EQ(r->args_raw, e.vars["CNI_ARGS"]);
}

TEST(ParseEnv, K8sArgsWithoutIgnoreUnknownAreAccepted) {
    auto e = full("ADD");
    e.vars["CNI_ARGS"] = "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p";
    auto r = parse_env(e.getenv());
    ASSERT_TRUE(r.ok()) << r.error().msg;
    EXPECT_EQ(r->arg("K8S_POD_NAME"), "p");
}

TEST(ParseEnv, UnknownArgs) {
    auto e = full("ADD");
    e.vars["CNI_ARGS"] = "FOO=bar";
    EXPECT_EQ(code_of(e), kUnsupportedField);
    e.vars["CNI_ARGS"] = "K8S_POD_NAME=p;FOO=bar";
    EXPECT_EQ(code_of(e), kUnsupportedField);
    e.vars["CNI_ARGS"] = "IgnoreUnknown=0;FOO=bar";
    EXPECT_EQ(code_of(e), kUnsupportedField);
    e.vars["CNI_ARGS"] = "IgnoreUnknown=yes;FOO=bar";
    EXPECT_EQ(code_of(e), kUnsupportedField);

    for (const char* ok : {"IgnoreUnknown=1;FOO=bar", "FOO=bar;IgnoreUnknown=1", "IgnoreUnknown=true;FOO=bar",
                           "IgnoreUnknown=True;FOO=bar;BAZ="}) {
        e.vars["CNI_ARGS"] = ok;
        auto r = parse_env(e.getenv());
        ASSERT_TRUE(r.ok()) << ok << ": " << r.error().msg;
        EXPECT_EQ(r->args.count("FOO"), 0u) << "unknown keys must not be recorded";
    }
}

TEST(ParseEnv, MalformedArgsAreCode4) {
    for (const char* bad :
         {"K8S_POD_NAME", "=value", "IgnoreUnknown=1;junk", "IgnoreUnknown=1;=x", "K8S_POD_NAME=p;K8S_POD_UID"}) {
        auto e = full("ADD");
        e.vars["CNI_ARGS"] = bad;
        EXPECT_EQ(code_of(e), kInvalidEnv) << "'" << bad << "'";
    }
}

TEST(ParseEnv, ArgsEdgeCases) {
    auto e = full("ADD");
    e.vars["CNI_ARGS"] = ";;K8S_POD_NAME=a=b;;K8S_POD_UID=;";
    auto r = parse_env(e.getenv());
    ASSERT_TRUE(r.ok()) << r.error().msg;
    EXPECT_EQ(r->arg("K8S_POD_NAME"), "a=b");
    EXPECT_EQ(r->args.count("K8S_POD_UID"), 1u);
    EXPECT_EQ(r->arg("K8S_POD_UID"), "");
    e.vars["CNI_ARGS"] = "";
    r = parse_env(e.getenv());
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->args.empty());
}

}  // namespace
}  // namespace skiff::cni
