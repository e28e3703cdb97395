import ArgumentParser
import HuskOptions
import HuskPod
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command in a running container; its exit status is husk's.",
        discussion: """
            Output goes to husk's stdout and stderr. -i passes husk's stdin on (without it the command's \
            stdin is /dev/null). -t gives the command a terminal of the container's own (a pty from its \
            /dev/pts, stdout and stderr merged as on any terminal); husk's own terminal is put in raw mode \
            meanwhile and its size follows.
            """)

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var target: RunningContainer
    @Flag(name: .shortAndLong, help: "Pass stdin on to the command.")
    var interactive = false
    @Flag(name: .shortAndLong, help: "Give the command a terminal.")
    var tty = false
    @Argument(parsing: .postTerminator, help: "The command, after --.")
    var command: [String] = []

    func run() throws {
        try runReporting {
            guard !command.isEmpty else { throw HuskError(.invalidArgument, "no command: husk exec POD -- COMMAND...") }
            let (client, name) = try target.find(globals)
            if tty {
                let session = try client.execTerminal(container: name, argv: command)
                // The exit status comes on the connection when the process has ended.
                var code: Int32? = nil
                TerminalRelay.run(master: session.master, input: interactive, end: session.connection, drainMilliseconds: 200, ended: {
                    code = session.exitCode()
                })
                throw ExitCode(code ?? 255)
            }
            let null = try FD.open("/dev/null", O_RDONLY)
            throw ExitCode(try client.exec(container: name, argv: command, stdio: [interactive ? 0 : null.raw, 1, 2]))
        }
    }
}

struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach to a running container's own streams: its output from now on, and with -i its stdin.",
        discussion: """
            -i needs stdin: true in the container's spec; with tty: true the container has a terminal and \
            -t puts husk's terminal in raw mode meanwhile. Ends when the container ends (with its exit \
            status) or when husk is interrupted. With stdinOnce the container's stdin closes when the first \
            attached input ends.
            """)

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var target: RunningContainer
    @Flag(name: .shortAndLong, help: "Pass stdin on to the container.")
    var interactive = false
    @Flag(name: .shortAndLong, help: "The container's stdin is a terminal (tty: true): put husk's terminal in raw mode.")
    var tty = false

    func run() throws {
        try runReporting {
            let (client, name) = try target.find(globals)
            let attachment = try client.attach(container: name, stdin: interactive)
            if tty && !attachment.tty {
                Out.err("Unable to use a TTY - container \(name) did not allocate one\n")
            }
            let saved = tty && attachment.tty && interactive && Terminal.isTerminal(0) ? (try? Terminal.makeRaw(0)) : nil
            defer { try? saved?.restore() }
            throw ExitCode(attachment.relay(stdin: interactive))
        }
    }
}
