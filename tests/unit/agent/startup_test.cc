// skiff-agent's start: the DaemonSet's init step that installs the plugin.
#include "agent/startup.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "common/files.h"
#include "test_support.h"

namespace skiff::agent {
namespace {

using skiff_test::TempDir;

TEST(InstallCniTest, CopiesByRenameWithMode0755) {
    TempDir tmp;
    std::ofstream(tmp.sub("skiff")) << "new plugin";
    ASSERT_TRUE(mkdir_p(tmp.sub("bin")).ok());
    std::ofstream(tmp.sub("bin/skiff")) << "old plugin";
    // A runtime running the old binary keeps its inode; the name moves on.
    struct stat before {};
    ASSERT_EQ(::stat(tmp.sub("bin/skiff").c_str(), &before), 0);
    ASSERT_TRUE(install_cni(tmp.sub("skiff"), tmp.sub("bin")).ok());
    struct stat after {};
    ASSERT_EQ(::stat(tmp.sub("bin/skiff").c_str(), &after), 0);
    EXPECT_NE(before.st_ino, after.st_ino);
    EXPECT_EQ(after.st_mode & 07777, 0755u);
    EXPECT_EQ(*read_file(tmp.sub("bin/skiff")), "new plugin");
    EXPECT_EQ(*list_dir(tmp.sub("bin")), std::vector<std::string>{"skiff"});
}

TEST(InstallCniTest, CreatesTheDirectoryAndFailsCleanly) {
    TempDir tmp;
    std::ofstream(tmp.sub("skiff")) << "plugin";
    ASSERT_TRUE(install_cni(tmp.sub("skiff"), tmp.sub("opt/cni/bin")).ok());
    EXPECT_TRUE(std::filesystem::exists(tmp.sub("opt/cni/bin/skiff")));
    auto missing = install_cni(tmp.sub("nope"), tmp.sub("out"));
    EXPECT_FALSE(missing.ok());
    EXPECT_FALSE(std::filesystem::exists(tmp.sub("out/nope")));
}

}  // namespace
}  // namespace skiff::agent
