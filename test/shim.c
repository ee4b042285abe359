/* A shim: runs SCRIPT in the tests' fork server (forkserver.py), or execs it.

   forkserver.py compiles one per script, with these defined as C literals:
   SCRIPT   the script's path
   NAMES    a directory of links to the script under each name it is started by, for
            an exec by the name we got (lfs-s3-py is git-lfs-s3 too), or NULL
   SIBLINGS the first arguments that start it as an agent, each followed by a comma
            ("" for none): the server hands those to a stand-in for our launcher
   ADDRESS  the server's socket

   We send the server our argv, environment, umask, parent's pid, ignored and blocked
   signals and which python3 PATH finds, with our standard descriptors and working
   directory; it answers with its copy's pid (or "exec"), then with the copy's wait
   status, which we end by. Signals we get go on to the copy's session. It is C
   because it starts a few thousand times a run: a python one cost 13 ms of CPU
   each, this one under one. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *siblings[] = {SIBLINGS NULL};
static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                SIGCONT};
static sigset_t mask;        /* as we were started: the script's */
static volatile pid_t copy;  /* the server's copy running the script */

/* The path we were started by (found on PATH, say): the script's argv[0], as the
   kernel gives it to the interpreter of a #! script, whatever our argv[0] says. */
static const char *started_as(char **argv)
{
    const char *path = (const char *)getauxval(AT_EXECFN);

    return path ? path : argv[0];
}

/* Exec the script by the name we were started by, as without the server. */
static void run_here(char **argv)
{
    static char link[4096];
    const char *target = SCRIPT, *names = NAMES, *name = started_as(argv);
    const char *base = strrchr(name, '/');
    struct stat st;

    if (names) {
        snprintf(link, sizeof link, "%s/%s", names, base ? base + 1 : name);
        if (lstat(link, &st) == 0)
            target = link;
    }
    sigprocmask(SIG_SETMASK, &mask, NULL);
    argv[0] = (char *)target;
    execve(target, argv, environ);
    fprintf(stderr, "fatal: cannot run %s: %s\n", target, strerror(errno));
    _exit(126);
}

struct buffer {
    char *data;
    size_t used, size;
};

/* Append a field and the NUL that ends it. */
static void add(struct buffer *b, const char *field)
{
    size_t length = strlen(field) + 1;

    if (b->used + length > b->size) {
        b->size = 2 * (b->used + length);
        if (!(b->data = realloc(b->data, b->size))) {
            fputs("fatal: out of memory\n", stderr);
            _exit(125);
        }
    }
    memcpy(b->data + b->used, field, length);
    b->used += length;
}

static void add_number(struct buffer *b, long number)
{
    char text[32];

    snprintf(text, sizeof text, "%ld", number);
    add(b, text);
}

/* The signals 1..SIGRTMAX in `set` as a field, "2 13 15". */
static void add_signals(struct buffer *b, const sigset_t *set, int ignored)
{
    char text[512] = "";
    size_t used = 0;
    struct sigaction action;

    for (int n = 1; n <= SIGRTMAX; n++) {
        int in;
        if (ignored)
            in = n != SIGKILL && n != SIGSTOP && sigaction(n, NULL, &action) == 0 &&
                 action.sa_handler == SIG_IGN;
        else
            in = sigismember(set, n) == 1;
        if (in)
            used += snprintf(text + used, sizeof text - used, used ? " %d" : "%d", n);
    }
    add(b, text);
}

/* What "#!/usr/bin/env python3" would start: the first python3 on PATH. */
static void add_python(struct buffer *b)
{
    static char python[4096];
    const char *path = getenv("PATH");
    char *entries = strdup(path ? path : "/bin:/usr/bin"), *rest = entries, *entry;
    struct stat st;

    while ((entry = strsep(&rest, ":"))) {
        snprintf(python, sizeof python, "%s/python3", *entry ? entry : ".");
        if (access(python, X_OK) == 0 && !(stat(python, &st) == 0 && S_ISDIR(st.st_mode)))
            break;
    }
    free(entries);
    add(b, python);
}

/* Whether environ's entry at `variable` is one python's os.environ holds: a name,
   "=", and no earlier entry of that name. */
static int first_of_its_name(char **variable)
{
    const char *end = strchr(*variable, '=');
    size_t length = end ? (size_t)(end - *variable) : 0;

    if (!length)
        return 0;
    for (char **earlier = environ; earlier < variable; earlier++)
        if (!strncmp(*earlier, *variable, length + 1))
            return 0;
    return 1;
}

static void forward(int number)  /* to all the script started, as to our group */
{
    int saved = errno;

    if (killpg(copy, number) < 0 && errno == ESRCH)
        kill(copy, number);
    errno = saved;
}

/* The next answer from the server: -1 when it failed, 0 when it closed. */
static ssize_t answer(int server, char *text, size_t size)
{
    ssize_t got;

    do
        got = recv(server, text, size - 1, 0);
    while (got < 0 && errno == EINTR);
    text[got > 0 ? got : 0] = '\0';
    return got;
}

int main(int argc, char **argv)
{
    struct buffer request = {0};
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    sigset_t blocked;
    char text[32];
    int server, here, agent = 0, status, number;
    mode_t umask_was;

    sigemptyset(&blocked);
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
        sigaddset(&blocked, forwarded[i]);
    sigprocmask(SIG_BLOCK, &blocked, &mask);  /* until they can be passed on */

    const char *exec = getenv("GIT_TEST_S3_EXEC");
    if (exec && !strcmp(exec, "1"))
        run_here(argv);
    for (const char **each = siblings; *each; each++)
        agent |= !strcmp(argc > 1 ? argv[1] : "", *each);

    add(&request, SCRIPT);
    add_python(&request);
    umask_was = umask(022);
    umask(umask_was);
    add_number(&request, umask_was);
    add_number(&request, getppid());
    add_signals(&request, NULL, 1);
    add_signals(&request, &mask, 0);
    add_number(&request, agent);
    add_number(&request, argc);
    add(&request, started_as(argv));
    for (int i = 1; i < argc; i++)
        add(&request, argv[i]);
    for (char **variable = environ; *variable; variable++)
        if (first_of_its_name(variable))
            add(&request, *variable);

    /* No server, a closed standard descriptor, a directory we may not open: exec. */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0)
            run_here(argv);
    strncpy(address.sun_path, ADDRESS, sizeof address.sun_path - 1);
    server = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (server < 0 || connect(server, (struct sockaddr *)&address, sizeof address) < 0)
        run_here(argv);
    here = open(".", O_RDONLY | O_CLOEXEC);
    if (here < 0)
        run_here(argv);

    int fds[4] = {0, 1, 2, here};
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof fds)];
    } control = {0};
    struct iovec iov = {request.data, request.used - 1};  /* NUL-separated, not ended */
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = control.space,
                             .msg_controllen = sizeof control.space};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(header), fds, sizeof fds);
    ssize_t sent;
    do
        sent = sendmsg(server, &message, 0);
    while (sent < 0 && errno == EINTR);
    if (sent < 0 || answer(server, text, sizeof text) <= 0 || !strcmp(text, "exec"))
        run_here(argv);  /* not for the server, or it failed before it forked */
    close(here);
    copy = atoi(text);

    struct sigaction action = {.sa_handler = forward, .sa_flags = SA_RESTART};
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
        sigaction(forwarded[i], &action, NULL);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    if (answer(server, text, sizeof text) <= 0) {
        fputs("fatal: the tests' fork server went away\n", stderr);
        _exit(125);
    }
    status = atoi(text);
    if (WIFSIGNALED(status)) {
        number = WTERMSIG(status);
        if (number != SIGKILL)
            signal(number, SIG_DFL);
        sigemptyset(&blocked);
        sigaddset(&blocked, number);
        sigprocmask(SIG_UNBLOCK, &blocked, NULL);
        kill(getpid(), number);
        _exit(-number & 0xff);
    }
    _exit(WEXITSTATUS(status));
}
