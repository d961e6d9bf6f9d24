// datapath::open_cgroup2(): the socket LB's cgroup path is the cgroup2 root on a
// unified host and /sys/fs/cgroup's unified/ on a hybrid one; anything else
// is refused with the path in the message.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "datapath/socklb.h"

namespace skiff {
namespace {

bool fd_is_cgroup2(int fd) {
    struct statfs s {};
    return ::fstatfs(fd, &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC;
}

bool path_is_cgroup2(const std::string& p) {
    struct statfs s {};
    return ::statfs(p.c_str(), &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC;
}

TEST(OpenCgroup2, SysFsCgroupGivesTheCgroup2RootOnUnifiedAndHybridHosts) {
    if (!path_is_cgroup2("/sys/fs/cgroup") && !path_is_cgroup2("/sys/fs/cgroup/unified"))
        GTEST_SKIP() << "this host has no cgroup2 at /sys/fs/cgroup or /sys/fs/cgroup/unified";
    auto fd = datapath::open_cgroup2("/sys/fs/cgroup");
    ASSERT_TRUE(fd) << fd.error().message;
    EXPECT_TRUE(fd_is_cgroup2(fd->get()));
    // The same directory as the one named directly.
    std::string direct = path_is_cgroup2("/sys/fs/cgroup") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
    struct stat a {
    }, b{};
    ASSERT_EQ(::fstat(fd->get(), &a), 0);
    ASSERT_EQ(::stat(direct.c_str(), &b), 0);
    EXPECT_EQ(a.st_dev, b.st_dev);
    EXPECT_EQ(a.st_ino, b.st_ino);
}

TEST(OpenCgroup2, ADirectoryOffCgroup2IsRefusedEvenWithAUnifiedSubdirectory) {
    char tmpl[] = "/tmp/skiff-cg2-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::string dir = tmpl;
    auto plain = datapath::open_cgroup2(dir);
    ASSERT_FALSE(plain);
    EXPECT_NE(plain.error().message.find(dir), std::string::npos) << plain.error().message;
    ASSERT_EQ(::mkdir((dir + "/unified").c_str(), 0755), 0);
    auto fake = datapath::open_cgroup2(dir);
    EXPECT_FALSE(fake) << "a unified/ that is no cgroup2 was taken";
    ::rmdir((dir + "/unified").c_str());
    ::rmdir(dir.c_str());
}

TEST(OpenCgroup2, AMissingPathOrAFileIsRefused) {
    EXPECT_FALSE(datapath::open_cgroup2("/nonexistent/skiff-cgroup"));
    EXPECT_FALSE(datapath::open_cgroup2("/etc/hostname"));
    EXPECT_FALSE(datapath::open_cgroup2(""));
}

}  // namespace
}  // namespace skiff
