namespace GpuActivations;
/// <summary>Temporary.</summary>
public static class Placeholder { }
