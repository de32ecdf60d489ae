; Inno Setup script of the StoreSight kiosk for Windows tills.
; NOT BUILT OR TESTED HERE: no Windows machine is available to this project. See
; installers/README.md for the recipe (PyInstaller on Windows, then ISCC on this file).
;
; Installs the PyInstaller folder dist\storesight-kiosk to Program Files, a Start-menu entry,
; and a logon entry for the till user (Startup folder) that starts the kiosk full screen.
; The machine's configuration (%APPDATA%\StoreSight\kiosk.json) and the outbox
; (%LOCALAPPDATA%\StoreSight\kiosk) belong to the till user: an upgrade or an uninstall
; never touches them, so checkouts not yet sent are never lost.

#define AppName "StoreSight kiosk"
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppExe "storesight-kiosk.exe"
#define Bundle "..\..\dist\storesight-kiosk"

[Setup]
AppId={{6F0F3C61-2B1E-4C53-9D0E-5A7C2B1F9E11}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=StoreSight
DefaultDirName={autopf}\StoreSight Kiosk
DefaultGroupName=StoreSight
DisableProgramGroupPage=yes
OutputDir=..\..\dist
OutputBaseFilename=storesight-kiosk-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequired=admin
; an upgrade closes a running kiosk first (it holds the camera and the outbox)
CloseApplications=yes
RestartApplications=no

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"; Parameters: "run"
Name: "{group}\{#AppName} settings"; Filename: "{app}\{#AppExe}"; Parameters: "settings"
Name: "{group}\{#AppName} selftest"; Filename: "{cmd}"; Parameters: "/k ""{app}\{#AppExe}"" selftest"
; the till user's logon starts the kiosk full screen (one instance: a second start exits)
Name: "{commonstartup}\{#AppName}"; Filename: "{app}\{#AppExe}"; Parameters: "run --kiosk"

[Run]
; the installation's own check: the models' hashes and the face pipeline
Filename: "{app}\{#AppExe}"; Parameters: "selftest --installation"; StatusMsg: "Checking the installation..."; Flags: runhidden waituntilterminated

[UninstallDelete]
; only what the bundle itself may have written next to the program; never the user's data
Type: filesandordirs; Name: "{app}\_internal\__pycache__"
