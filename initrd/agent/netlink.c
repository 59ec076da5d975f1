/* Guest network configuration over rtnetlink (no ip(8) in production
 * paths): NICs found by MAC get their name, MTU, addresses and IFF_UP; then
 * routes and permanent neighbours. Each step names what failed. */
#define _GNU_SOURCE
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "calls.h"
#include "util.h"

#define NL_BUF_BYTES 32768
#define NL_MAX_DUMP_MESSAGES 4096

struct nl_req
{
  struct nlmsghdr h;
  char body[1024];
};

static uint32_t nl_seq;

static int
nl_open (struct agent_error *err)
{
  int fd = socket (AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  if (fd < 0)
    return agent_error_set (err, errno, "netlink socket");
  if (bind (fd, (struct sockaddr *) &sa, sizeof (sa)) < 0)
    {
      close (fd);
      return agent_error_set (err, errno, "bind netlink socket");
    }
  return fd;
}

static void
add_attr (struct nl_req *r, unsigned short type, const void *data, size_t len)
{
  struct rtattr *a = (struct rtattr *) ((char *) r + NLMSG_ALIGN (r->h.nlmsg_len));
  size_t total = RTA_LENGTH (len);
  if (NLMSG_ALIGN (r->h.nlmsg_len) + RTA_ALIGN (total) > sizeof (*r))
    abort (); /* our own messages are small and fixed */
  a->rta_type = type;
  a->rta_len = (unsigned short) total;
  memcpy (RTA_DATA (a), data, len);
  r->h.nlmsg_len = (uint32_t) (NLMSG_ALIGN (r->h.nlmsg_len) + RTA_ALIGN (total));
}

/* Sends one request with NLM_F_ACK and returns 0 or -errno from the kernel's answer. */
static int
nl_talk (int fd, struct nl_req *r)
{
  char buf[NL_BUF_BYTES];
  r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  r->h.nlmsg_seq = ++nl_seq;
  if (send (fd, r, r->h.nlmsg_len, 0) < 0)
    return -errno;
  for (int rounds = 0; rounds < 16; rounds++)
    {
      ssize_t n = recv (fd, buf, sizeof (buf), 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -errno;
      for (struct nlmsghdr *h = (struct nlmsghdr *) buf; NLMSG_OK (h, (size_t) n); h = NLMSG_NEXT (h, n))
        if (h->nlmsg_seq == r->h.nlmsg_seq && h->nlmsg_type == NLMSG_ERROR)
          return ((struct nlmsgerr *) NLMSG_DATA (h))->error;
    }
  return -EIO;
}

/* Finds the link with `mac` (6 bytes); fills its index and name. */
static int
find_link (int fd, const uint8_t mac[6], int *index, char name[IFNAMSIZ])
{
  struct nl_req r = { 0 };
  struct ifinfomsg *ifi = NLMSG_DATA (&r.h);
  char buf[NL_BUF_BYTES];
  int found = -ENODEV, messages = 0;

  r.h.nlmsg_len = NLMSG_LENGTH (sizeof (*ifi));
  r.h.nlmsg_type = RTM_GETLINK;
  r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  r.h.nlmsg_seq = ++nl_seq;
  ifi->ifi_family = AF_UNSPEC;
  if (send (fd, &r, r.h.nlmsg_len, 0) < 0)
    return -errno;
  for (;;)
    {
      ssize_t n = recv (fd, buf, sizeof (buf), 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return n < 0 ? -errno : -EIO;
      for (struct nlmsghdr *h = (struct nlmsghdr *) buf; NLMSG_OK (h, (size_t) n); h = NLMSG_NEXT (h, n))
        {
          if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR || ++messages > NL_MAX_DUMP_MESSAGES)
            return found;
          if (h->nlmsg_type != RTM_NEWLINK)
            continue;
          struct ifinfomsg *info = NLMSG_DATA (h);
          int alen = (int) IFLA_PAYLOAD (h);
          const uint8_t *addr = NULL;
          const char *ifname = NULL;
          for (struct rtattr *a = IFLA_RTA (info); RTA_OK (a, alen); a = RTA_NEXT (a, alen))
            {
              if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD (a) == 6)
                addr = RTA_DATA (a);
              else if (a->rta_type == IFLA_IFNAME)
                ifname = RTA_DATA (a);
            }
          if (addr && memcmp (addr, mac, 6) == 0 && found == -ENODEV)
            {
              *index = info->ifi_index;
              snprintf (name, IFNAMSIZ, "%s", ifname ? ifname : "");
              found = 0;
            }
        }
    }
}

enum link_state
{
  LINK_KEEP,
  LINK_UP,
  LINK_DOWN,
};

/* mac: NULL = keep the link's address. */
static int
set_link_mac (int fd, int index, const char *rename_to, uint32_t mtu, const uint8_t *mac, enum link_state state)
{
  struct nl_req r = { 0 };
  struct ifinfomsg *ifi = NLMSG_DATA (&r.h);
  r.h.nlmsg_len = NLMSG_LENGTH (sizeof (*ifi));
  r.h.nlmsg_type = RTM_NEWLINK;
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  if (state != LINK_KEEP)
    {
      ifi->ifi_flags = state == LINK_UP ? IFF_UP : 0;
      ifi->ifi_change = IFF_UP;
    }
  if (mtu)
    add_attr (&r, IFLA_MTU, &mtu, sizeof (mtu));
  if (rename_to && rename_to[0])
    add_attr (&r, IFLA_IFNAME, rename_to, strlen (rename_to) + 1);
  if (mac)
    add_attr (&r, IFLA_ADDRESS, mac, 6);
  return nl_talk (fd, &r);
}

static int
set_link (int fd, int index, const char *rename_to, uint32_t mtu, enum link_state state)
{
  return set_link_mac (fd, index, rename_to, mtu, NULL, state);
}

static int
parse_mac (const char *s, uint8_t mac[6])
{
  unsigned v[6];
  if (sscanf (s, "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6 || strlen (s) != 17)
    return -1;
  for (int i = 0; i < 6; i++)
    mac[i] = (uint8_t) v[i];
  return 0;
}

/* "10.0.0.2/24" or "fd00::2/64" (prefix optional: full length). */
static int
parse_cidr (const char *s, int *family, uint8_t addr[16], int *prefix)
{
  char ip[64];
  const char *slash = strchr (s, '/');
  size_t n = slash ? (size_t) (slash - s) : strlen (s);
  if (n >= sizeof (ip))
    return -1;
  memcpy (ip, s, n);
  ip[n] = '\0';
  *family = strchr (ip, ':') ? AF_INET6 : AF_INET;
  if (inet_pton (*family, ip, addr) != 1)
    return -1;
  int max = *family == AF_INET ? 32 : 128;
  if (slash)
    {
      char *end;
      long p = strtol (slash + 1, &end, 10);
      if (*end || p < 0 || p > max || slash[1] == '\0')
        return -1;
      *prefix = (int) p;
    }
  else
    *prefix = max;
  return 0;
}

static int
add_address (int fd, int index, const char *cidr)
{
  struct nl_req r = { 0 };
  struct ifaddrmsg *ifa = NLMSG_DATA (&r.h);
  uint8_t addr[16];
  int family, prefix;
  if (parse_cidr (cidr, &family, addr, &prefix) < 0)
    return -EINVAL;
  r.h.nlmsg_len = NLMSG_LENGTH (sizeof (*ifa));
  r.h.nlmsg_type = RTM_NEWADDR;
  r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  ifa->ifa_family = (unsigned char) family;
  ifa->ifa_prefixlen = (unsigned char) prefix;
  ifa->ifa_index = (unsigned) index;
  size_t len = family == AF_INET ? 4 : 16;
  add_attr (&r, IFA_LOCAL, addr, len);
  add_attr (&r, IFA_ADDRESS, addr, len);
  return nl_talk (fd, &r);
}

static int
add_route (int fd, const Frakti__Agent__V1__GuestRoute *rt)
{
  struct nl_req r = { 0 };
  struct rtmsg *m = NLMSG_DATA (&r.h);
  uint8_t dst[16] = { 0 }, gw[16];
  int family = AF_INET, prefix = 0, gfamily;
  if (strcmp (rt->dst, "default") != 0 && parse_cidr (rt->dst, &family, dst, &prefix) < 0)
    return -EINVAL;
  if (rt->gateway[0])
    {
      int gprefix;
      if (parse_cidr (rt->gateway, &gfamily, gw, &gprefix) < 0)
        return -EINVAL;
      if (strcmp (rt->dst, "default") == 0)
        family = gfamily;
      else if (gfamily != family)
        return -EINVAL;
    }
  r.h.nlmsg_len = NLMSG_LENGTH (sizeof (*m));
  r.h.nlmsg_type = RTM_NEWROUTE;
  r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  m->rtm_family = (unsigned char) family;
  m->rtm_dst_len = (unsigned char) prefix;
  m->rtm_table = RT_TABLE_MAIN;
  m->rtm_protocol = RTPROT_BOOT;
  m->rtm_scope = rt->gateway[0] ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  m->rtm_type = RTN_UNICAST;
  size_t len = family == AF_INET ? 4 : 16;
  if (prefix > 0)
    add_attr (&r, RTA_DST, dst, len);
  if (rt->gateway[0])
    add_attr (&r, RTA_GATEWAY, gw, len);
  if (rt->device[0])
    {
      unsigned idx = if_nametoindex (rt->device);
      if (idx == 0)
        return -ENODEV;
      add_attr (&r, RTA_OIF, &idx, sizeof (idx));
    }
  return nl_talk (fd, &r);
}

static int
add_neighbor (int fd, const Frakti__Agent__V1__GuestNeighbor *nb, int default_index)
{
  struct nl_req r = { 0 };
  struct ndmsg *nd = NLMSG_DATA (&r.h);
  uint8_t ip[16], mac[6];
  int family, prefix, index = default_index;
  if (parse_cidr (nb->ip, &family, ip, &prefix) < 0 || parse_mac (nb->mac, mac) < 0)
    return -EINVAL;
  if (nb->device[0] && (index = (int) if_nametoindex (nb->device)) == 0)
    return -ENODEV;
  if (index <= 0)
    return -ENODEV;
  r.h.nlmsg_len = NLMSG_LENGTH (sizeof (*nd));
  r.h.nlmsg_type = RTM_NEWNEIGH;
  r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  nd->ndm_family = (unsigned char) family;
  nd->ndm_ifindex = index;
  nd->ndm_state = NUD_PERMANENT;
  add_attr (&r, NDA_DST, ip, family == AF_INET ? 4 : 16);
  add_attr (&r, NDA_LLADDR, mac, 6);
  return nl_talk (fd, &r);
}

int
netlink_loopback_up (struct agent_error *err)
{
  int fd = nl_open (err), r;
  if (fd < 0)
    return -1;
  r = set_link (fd, (int) if_nametoindex ("lo"), NULL, 0, LINK_UP);
  close (fd);
  if (r < 0)
    return agent_error_set (err, -r, "bring `lo` up");
  return 0;
}

size_t
call_configure_network (struct agent *agent UNUSED, const Request *req, uint8_t **out)
{
  const Frakti__Agent__V1__ConfigureNetworkRequest *n = req->configure_network;
  struct agent_error err = { 0 };
  cleanup_close int fd = nl_open (&err);
  int first_index = -1, r;

  if (fd < 0)
    return agent_error_response (&err, out);
  /* Routes through eth0 need lo too (and port forwards dial 127.0.0.1). */
  set_link (fd, (int) if_nametoindex ("lo"), NULL, 0, LINK_UP);
  for (size_t i = 0; i < n->n_interfaces; i++)
    {
      const Frakti__Agent__V1__GuestInterface *x = n->interfaces[i];
      uint8_t mac[6], new_mac[6];
      char name[IFNAMSIZ];
      int index;
      if (parse_mac (x->mac, mac) < 0)
        return error_response (EINVAL, "invalid interface MAC", out);
      bool set_mac = x->set_mac[0] != 0;
      if (set_mac && parse_mac (x->set_mac, new_mac) < 0)
        return error_response (EINVAL, "invalid interface set_mac", out);
      if (strlen (x->name) >= IFNAMSIZ || strchr (x->name, '/'))
        return error_response (EINVAL, "invalid interface name", out);
      if ((r = find_link (fd, mac, &index, name)) < 0)
        {
          agent_error_set (&err, -r, "find the NIC with MAC %s", x->mac);
          return agent_error_response (&err, out);
        }
      if (first_index < 0)
        first_index = index;
      bool rename = x->name[0] && strcmp (x->name, name) != 0;
      /* The kernel renames only a link that is down (EBUSY otherwise): down
       * first (a no-op for a NIC just plugged in), up again with its MTU below. */
      if (rename && ((r = set_link (fd, index, NULL, 0, LINK_DOWN)) < 0 || (r = set_link (fd, index, x->name, 0, LINK_KEEP)) < 0))
        {
          agent_error_set (&err, -r, "rename `%s` to `%s`", name, x->name);
          return agent_error_response (&err, out);
        }
      /* A pool VM's NIC takes the pod's MAC here (virtio-net changes it live, over its control queue). */
      if ((r = set_link_mac (fd, index, NULL, x->mtu, set_mac ? new_mac : NULL, LINK_UP)) < 0)
        {
          agent_error_set (&err, -r, "set MTU %u%s%.17s and up on `%s`", x->mtu, set_mac ? ", MAC " : "", set_mac ? x->set_mac : "", rename ? x->name : name);
          return agent_error_response (&err, out);
        }
      for (size_t a = 0; a < x->n_addresses; a++)
        if ((r = add_address (fd, index, x->addresses[a])) < 0 && r != -EEXIST)
          {
            agent_error_set (&err, -r, "add address %.64s to `%s`", x->addresses[a], rename ? x->name : name);
            return agent_error_response (&err, out);
          }
    }
  for (size_t i = 0; i < n->n_routes; i++)
    if ((r = add_route (fd, n->routes[i])) < 0 && r != -EEXIST)
      {
        agent_error_set (&err, -r, "add route %.64s via %.64s", n->routes[i]->dst, n->routes[i]->gateway);
        return agent_error_response (&err, out);
      }
  for (size_t i = 0; i < n->n_neighbors; i++)
    if ((r = add_neighbor (fd, n->neighbors[i], first_index)) < 0)
      {
        agent_error_set (&err, -r, "add neighbour %.64s", n->neighbors[i]->ip);
        return agent_error_response (&err, out);
      }
  Response resp = FRAKTI__AGENT__V1__RESPONSE__INIT;
  Frakti__Agent__V1__ConfigureNetworkResponse m = FRAKTI__AGENT__V1__CONFIGURE_NETWORK_RESPONSE__INIT;
  resp.result_case = FRAKTI__AGENT__V1__RESPONSE__RESULT_CONFIGURE_NETWORK;
  resp.configure_network = &m;
  return pack_response (&resp, out);
}
