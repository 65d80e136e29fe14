using System.Runtime.InteropServices;

namespace GpuActivations.Tests.Hardening;

/// <summary>
/// A large range of host addresses backed by a small amount of memory (Linux): one shared memory file of
/// <see cref="Period"/> bytes mapped again and again over a reserved range, so byte i and byte i + Period are the same
/// memory. A 16 GiB buffer costs <see cref="Period"/> bytes of RAM; whatever an op writes anywhere shows up in the first
/// period, so checking that period checks the whole range. The page tables are filled when mapping (MAP_POPULATE): a
/// first touch of each 4 KiB page would otherwise fault, minutes for 16 GiB.
/// </summary>
public sealed unsafe class AliasedMemory : IDisposable
{
    const int ProtNone = 0, ProtRead = 1, ProtWrite = 2;
    const int MapShared = 1, MapPrivate = 2, MapFixed = 0x10, MapAnonymous = 0x20, MapNoReserve = 0x4000, MapPopulate = 0x8000;

    [DllImport("libc", SetLastError = true)] static extern int memfd_create(string name, uint flags);
    [DllImport("libc", SetLastError = true)] static extern int ftruncate(int fd, long length);
    [DllImport("libc", SetLastError = true)] static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);
    [DllImport("libc", SetLastError = true)] static extern int munmap(nint addr, nuint length);
    [DllImport("libc", SetLastError = true)] static extern int close(int fd);

    /// <summary>The bytes of real memory behind the range; the pattern repeats with this period.</summary>
    public const long Period = 32L << 20;

    readonly nuint mapped;

    /// <summary>The start of the range (aligned to the page size).</summary>
    public nint Pointer { get; }
    /// <summary>The bytes asked for (the range is this, rounded up to a whole number of periods).</summary>
    public long Bytes { get; }

    AliasedMemory(nint pointer, nuint mapped, long bytes) => (Pointer, this.mapped, Bytes) = (pointer, mapped, bytes);

    /// <summary>Whether the platform supports it (Linux).</summary>
    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>Maps <paramref name="bytes"/> of aliased addresses, all zero.</summary>
    public static AliasedMemory Create(long bytes)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("aliased mappings need Linux (memfd_create, mmap)");
        long periods = (bytes + Period - 1) / Period;
        nuint total = (nuint)(periods * Period);
        int fd = memfd_create("gpuactivations-aliased", 0);
        if (fd < 0) throw new InvalidOperationException($"memfd_create failed: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            if (ftruncate(fd, Period) != 0) throw new InvalidOperationException($"ftruncate failed: errno {Marshal.GetLastPInvokeError()}");
            nint reserved = mmap(0, total, ProtNone, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
            if (reserved == -1) throw new InvalidOperationException($"reserving {total} bytes of addresses failed: errno {Marshal.GetLastPInvokeError()}");
            for (long p = 0; p < periods; p++)
            {
                nint at = mmap(reserved + (nint)(p * Period), (nuint)Period, ProtRead | ProtWrite, MapShared | MapFixed | MapPopulate, fd, 0);
                if (at == -1)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    munmap(reserved, total);
                    throw new InvalidOperationException($"mapping period {p} failed: errno {errno}");
                }
            }
            return new AliasedMemory(reserved, total, bytes);
        }
        finally
        {
            close(fd); // the mappings keep the file alive
        }
    }

    /// <summary>The first period (all of the memory there is), as elements of <typeparamref name="T"/>.</summary>
    public Span<T> First<T>() where T : unmanaged => new((void*)Pointer, (int)(Period / sizeof(T)));

    /// <summary>Unmaps the range.</summary>
    public void Dispose()
    {
        if (mapped != 0) munmap(Pointer, mapped);
        GC.SuppressFinalize(this);
    }
}
