-- Path c: Orthanc as an auto-routing relay. The classic Lua auto-forward from Orthanc's
-- documentation: every instance Orthanc stores is sent on to the modality "sink".
function OnStoredInstance(instanceId, tags, metadata, origin)
  if origin['RequestOrigin'] ~= 'Lua' then
    SendToModality(instanceId, 'sink')
  end
end
