// send/recv syscall cost on loopback TCP, 64 B, data already there (no wait).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cstdio>
#include <cstdint>
static int64_t cpu_ns(){timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
int main(){
  int l=socket(AF_INET,SOCK_STREAM,0); sockaddr_in a{}; a.sin_family=AF_INET; a.sin_addr.s_addr=htonl(INADDR_LOOPBACK);
  bind(l,(sockaddr*)&a,sizeof a); listen(l,1); socklen_t n=sizeof a; getsockname(l,(sockaddr*)&a,&n);
  int c=socket(AF_INET,SOCK_STREAM,0); connect(c,(sockaddr*)&a,sizeof a); int s=accept(l,nullptr,nullptr);
  int one=1; setsockopt(c,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one); setsockopt(s,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
  char buf[64]={0}; const int N=200000; int64_t ts=0,tr=0;
  for(int r=0;r<5;r++){ ts=tr=0;
  for(int i=0;i<N;i++){ int64_t t0=cpu_ns(); send(c,buf,64,0); int64_t t1=cpu_ns(); recv(s,buf,64,0); int64_t t2=cpu_ns(); ts+=t1-t0; tr+=t2-t1; }
  int64_t e0=cpu_ns(); for(int i=0;i<N;i++){cpu_ns();} int64_t e=(cpu_ns()-e0)/N; int64_t p0=cpu_ns(); for(int i=0;i<N;i++){send(c,buf,64,0);recv(s,buf,64,0);} int64_t p=(cpu_ns()-p0)/N; printf("clock %ld ns, pair (no clocks) %ld ns; ",(long)e,(long)p); printf("send %.0f ns  recv %.0f ns (thread CPU, incl. ~clock read)\n",(double)ts/N,(double)tr/N);}
}
