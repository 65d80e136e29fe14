namespace GpuActivations.Tests.Gates;

/// <summary>
/// How many threads of a kernel an sm_80/sm_90 multiprocessor keeps resident, limited by registers alone (the elementwise
/// kernels use no shared memory): 65,536 32-bit registers, at most 2,048 threads and 32 groups, registers allocated per
/// warp in units of 256. Full occupancy at any group size therefore needs at most 32 registers per thread.
/// </summary>
public static class Occupancy
{
    /// <summary>Registers per multiprocessor (sm_80, sm_90).</summary>
    public const int RegistersPerMultiprocessor = 65536;
    /// <summary>Resident threads per multiprocessor (sm_80, sm_90).</summary>
    public const int ThreadsPerMultiprocessor = 2048;
    /// <summary>Resident groups per multiprocessor (sm_80, sm_90).</summary>
    public const int GroupsPerMultiprocessor = 32;
    /// <summary>The register allocation unit per warp.</summary>
    public const int AllocationUnit = 256;
    /// <summary>Threads per warp.</summary>
    public const int WarpSize = 32;

    /// <summary>The most registers per thread that keep every one of <see cref="ThreadsPerMultiprocessor"/> threads resident.</summary>
    public const int FullOccupancyRegisters = RegistersPerMultiprocessor / ThreadsPerMultiprocessor;

    /// <summary>Resident threads per multiprocessor for <paramref name="registers"/> per thread at <paramref name="groupSize"/>.</summary>
    public static int ResidentThreads(int registers, int groupSize)
    {
        int perWarp = (registers * WarpSize + AllocationUnit - 1) / AllocationUnit * AllocationUnit;
        int warps = RegistersPerMultiprocessor / Math.Max(perWarp, AllocationUnit);
        int warpsPerGroup = (groupSize + WarpSize - 1) / WarpSize;
        int groups = Math.Min(Math.Min(warps / warpsPerGroup, GroupsPerMultiprocessor), ThreadsPerMultiprocessor / groupSize);
        return groups * groupSize;
    }

    /// <summary>The resident fraction of <see cref="ThreadsPerMultiprocessor"/> (1 = full occupancy).</summary>
    public static double Fraction(int registers, int groupSize) => (double)ResidentThreads(registers, groupSize) / ThreadsPerMultiprocessor;
}
